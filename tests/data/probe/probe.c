/* probe: make raw syscalls and print what came back, one line per call.
 *   probe [x86] NR [ARG...] [-- [x86] NR [ARG...] ...]
 * prints "ret N" or "errno N". "x86" makes the call through int 0x80 (the i386 ABI).
 *   probe notify MESSAGE
 * sends MESSAGE as one datagram to $NOTIFY_SOCKET (what sd_notify does).
 * Built static by the tests and bound into a busybox container. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

static long x86_call(long nr, long a[6]) {
    long ret;
    register long ebp __asm__("ebp") = a[5];
    (void)ebp;
    __asm__ volatile("push %%rbp\n\tmov %7, %%rbp\n\tint $0x80\n\tpop %%rbp"
                     : "=a"(ret)
                     : "a"(nr), "b"(a[0]), "c"(a[1]), "d"(a[2]), "S"(a[3]), "D"(a[4]), "m"(a[5])
                     : "memory");
    return ret;
}

static int notify(const char *msg) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path) return 3;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0) return 4;
    if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("sendto"); return 5; }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "notify") == 0) return notify(argv[2]);
    int i = 1;
    while (i < argc) {
        int x86 = 0;
        long a[6] = {0};
        if (strcmp(argv[i], "x86") == 0) { x86 = 1; i++; }
        if (i >= argc) return 2;
        long nr = strtol(argv[i++], NULL, 0);
        int n = 0;
        while (i < argc && strcmp(argv[i], "--") != 0 && n < 6) a[n++] = (long)strtoull(argv[i++], NULL, 0);
        if (i < argc && strcmp(argv[i], "--") == 0) i++;
        long r;
        if (x86) {
            r = x86_call(nr, a);
            if (r < 0 && r > -4096) printf("errno %ld\n", -r); else printf("ret %ld\n", r);
        } else {
            errno = 0;
            r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
            if (r == -1 && errno) printf("errno %d\n", errno); else printf("ret %ld\n", r);
        }
        fflush(stdout);
    }
    return 0;
}
