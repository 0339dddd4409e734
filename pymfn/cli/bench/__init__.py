"""``pymfn bench <command>``: one module per command (add_arguments + run), registered in pymfn.cli."""
