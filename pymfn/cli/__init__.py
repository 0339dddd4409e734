"""Command lines: `pymfn <command>` and `pymfn bench <command>`."""
