#!/bin/sh
# sw64-standin.sh OUT: writes the SW64 stand-in for hello to OUT.
#
# No compiler for SW64 (Sunway) exists on these machines, so the SW64 image cannot carry a
# real program. What it carries instead is honest and checkable: a minimal ELF64
# little-endian executable header with e_machine = EM_SW64 (0x9916), followed by a text
# note saying what it is. pier's ELF check accepts it for linux/sw64 (right machine, class
# and byte order); it is built, never run. Replace this step with your vendor toolchain's
# compiler (e.g. sw_64-sunway-linux-gnu-gcc -static) to ship a real binary.
set -eu
out=${1:?usage: sh sw64-standin.sh OUT}
note='pier example hello: SW64 stand-in, not a program (no SW64 compiler exists here); built, never run.'
mkdir -p "$(dirname "$out")"
{
    # e_ident: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, then padding to 16 bytes
    printf '\177ELF\002\001\001\000\000\000\000\000\000\000\000\000'
    # e_type ET_EXEC (2), e_machine EM_SW64 (0x9916), e_version 1
    printf '\002\000\026\231\001\000\000\000'
    # e_entry, e_phoff, e_shoff (0), e_flags (0)
    printf '\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000'
    printf '\000\000\000\000\000\000\000\000\000\000\000\000'
    # e_ehsize 64, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx (0)
    printf '\100\000\000\000\000\000\000\000\000\000\000\000'
    printf '%s\n' "$note"
} >"$out.tmp"
mv "$out.tmp" "$out"
