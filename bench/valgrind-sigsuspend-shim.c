/*
 * bench/valgrind-sigsuspend-shim.c — lets Swift programs run under valgrind 3.19 (Debian 12).
 *
 * A Swift executable with an async main ends its main thread in libdispatch's
 * _dispatch_sig_thread(), which calls sigsuspend() on a `static const sigset_t` in read-only
 * memory. Valgrind 3.19 sanitises the mask *in place* before the syscall, writes to that
 * read-only page and dies with "VALGRIND INTERNAL ERROR: ... signal 11". This shim, preloaded
 * only into Sluice while it runs under callgrind (bench/run.sh), copies the mask to the stack
 * first. It runs once, when the main thread parks; it does not touch the request path.
 *
 * Build: cc -O2 -shared -fPIC -o bench/out/valgrind-sigsuspend-shim.so bench/valgrind-sigsuspend-shim.c
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, (size_t)(_NSIG / 8));
}
