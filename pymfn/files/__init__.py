"""Files pymfn reads and writes safely: the output transaction, guarded reads, cache hashes."""
