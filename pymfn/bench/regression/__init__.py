"""Is a build slower than another: builds, interleaved runs, saved runs."""
