//! A private `dockerd` for tests (see DEVELOPERS notes in the helper prompt).
