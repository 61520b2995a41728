//! The architecture table (X86, ARM, LoongArch, SW64, MIPS): platforms, toolchain names,
//! ELF expectations and scaling thresholds. Filled in by the builder work (issue 5); the
//! canonical platform names already live in `pier_oci::Platform`.
#![deny(missing_docs)]
