/* hello: prints a greeting and the machine it runs on, as uname(2) reports it
 * (x86_64, aarch64, loongarch64, mips64, ...). Built static by zig cc, one binary per
 * platform of pier.yaml. */
#include <stdio.h>
#include <sys/utsname.h>

int main(void) {
    struct utsname u;
    if (uname(&u) != 0) {
        perror("uname");
        return 1;
    }
    printf("hello from pier, running on %s\n", u.machine);
    return 0;
}
