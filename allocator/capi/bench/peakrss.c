/* Runs a command and reports its peak resident set size: scripts/bench_suite.sh
 * wraps every workload program in it, so that programs it did not write
 * (mixed.c) are measured alike.
 *
 * usage: peakrss command [args...]
 * The command's output passes through; then "peak_rss_kib=<ru_maxrss>" of the
 * child (wait4) is printed on stdout. Exits with the command's status, or 1 if
 * a signal ended it. Under LD_PRELOAD this wrapper runs on the preloaded
 * allocator too, but it is a separate process: its own memory is not counted. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: peakrss command [args...]\n");
        return 2;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("peakrss: fork");
        return 1;
    }
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        perror("peakrss: exec");
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) {
        perror("peakrss: wait4");
        return 1;
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "peakrss: %s killed by signal %d\n", argv[1], WTERMSIG(status));
        return 1;
    }
    printf("peak_rss_kib=%ld\n", ru.ru_maxrss);
    return WEXITSTATUS(status);
}
