//! Multi-arch OCI image layouts built from static binaries (zig cc) for tests.
