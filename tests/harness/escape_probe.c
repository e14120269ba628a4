/* escape_probe: tries one way out of a container and says how it ended.
 *
 *   escape_probe PROBE [ARG]...
 *
 * Each attempt runs in a forked child, so that a seccomp kill (SIGSYS) is reported instead of
 * ending the probe. One line on stdout:
 *
 *   PROBE ok [DETAIL]           the attempt worked (an escape, unless the test expects it)
 *   PROBE errno=NAME            the kernel refused it with errno NAME (EPERM, EROFS, ...)
 *   PROBE signal=N              the child died of signal N (31: SIGSYS from seccomp)
 *
 * Built static by tests/harness/fixtures.sh (gcc -static) into the `probe` fixture image,
 * because busybox has no keyctl, ptrace, open_by_handle_at, capset or finit_module.
 * `escape_probe fds` instead prints the descriptors it was started with, one a line:
 * `fd N TARGET` (what /proc/self/fd/N links to), without forking; `escape_probe raw-list`
 * the names `escape_probe raw NAME` knows.
 *
 * Exit status: 0 when the line was printed, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static char detail[512];

static int do_open(int argc, char **argv);

/* Each attempt returns 0 on success (filling `detail` if it has something to say), or -1
 * with errno set. */
typedef int (*attempt_fn)(int argc, char **argv);

static int write_file(int argc, char **argv) {
  if (argc < 1) return errno = EINVAL, -1;
  int fd = open(argv[0], O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const char *v = argc > 1 ? argv[1] : "1\n";
  return write(fd, v, strlen(v)) < 0 ? -1 : 0;
}

static int do_mount(int argc, char **argv) {
  (void)argc, (void)argv;
  return mount("none", "/tmp", "tmpfs", 0, NULL);
}

static int do_unshare(int argc, char **argv) {
  if (argc < 1) return errno = EINVAL, -1;
  int flag = !strcmp(argv[0], "user") ? CLONE_NEWUSER
           : !strcmp(argv[0], "mount") ? CLONE_NEWNS
           : !strcmp(argv[0], "pid") ? CLONE_NEWPID
           : !strcmp(argv[0], "net") ? CLONE_NEWNET : 0;
  if (!flag) return errno = EINVAL, -1;
  return unshare(flag);
}

static int clone_child(void *arg) {
  (void)arg;
  return 0;
}

static int do_clone(int argc, char **argv) {
  /* clone NAMESPACE: a child in a new namespace, the way around a blocked unshare. */
  if (argc < 1) return errno = EINVAL, -1;
  int flag = !strcmp(argv[0], "user") ? CLONE_NEWUSER
           : !strcmp(argv[0], "mount") ? CLONE_NEWNS : 0;
  if (!flag) return errno = EINVAL, -1;
  static char stack[64 * 1024];
  pid_t pid = clone(clone_child, stack + sizeof stack, flag | SIGCHLD, NULL);
  if (pid < 0) return -1;
  waitpid(pid, NULL, 0);
  return 0;
}

static int do_clone3(int argc, char **argv) {
  /* clone3 NAMESPACE: the same through clone3, whose flags a filter cannot inspect. */
  if (argc < 1) return errno = EINVAL, -1;
  unsigned long long flag = !strcmp(argv[0], "user") ? CLONE_NEWUSER
                          : !strcmp(argv[0], "mount") ? CLONE_NEWNS : 0;
  if (!flag) return errno = EINVAL, -1;
  unsigned long long args[11] = {0};
  args[0] = flag;    /* flags */
  args[4] = SIGCHLD; /* exit_signal */
  long pid = syscall(SYS_clone3, args, sizeof args);
  if (pid < 0) return -1;
  if (pid == 0) _exit(0);
  waitpid(pid, NULL, 0);
  return 0;
}

static int do_chroot_escape(int argc, char **argv) {
  /* chroot-escape PATH: the classic way out of a chroot (not of a pivot_root): chroot into a
   * subdirectory, climb past the old root with "..", chroot there, and open PATH. */
  if (argc < 1) return errno = EINVAL, -1;
  mkdir("/tmp/.jail", 0700);
  if (chroot("/tmp/.jail") < 0) return -1;
  for (int i = 0; i < 64; i++)
    if (chdir("..") < 0) return -1;
  if (chroot(".") < 0) return -1;
  return do_open(argc, argv);
}

/* System calls that reach the host's kernel state, called with zero arguments: refused by
 * the filter (SIGSYS) or, when allowed, failing for want of a capability or of valid
 * arguments; never doing anything with zeros. */
static const struct {
  const char *name;
  long nr;
} raw_calls[] = {
    {"bpf", SYS_bpf},
    {"perf_event_open", SYS_perf_event_open},
    {"userfaultfd", SYS_userfaultfd},
    {"kexec_load", SYS_kexec_load},
    {"reboot", SYS_reboot},
    {"swapon", SYS_swapon},
    {"acct", SYS_acct},
    {"quotactl", SYS_quotactl},
    {"pivot_root", SYS_pivot_root},
    {"umount2", SYS_umount2},
    {"setns", SYS_setns},
    {"fsopen", SYS_fsopen},
    {"open_tree", SYS_open_tree},
    {"move_mount", SYS_move_mount},
    {"process_vm_readv", SYS_process_vm_readv},
    {"kcmp", SYS_kcmp},
    {"iopl", SYS_iopl},
    {"ioperm", SYS_ioperm},
    {"syslog", SYS_syslog},
    {"settimeofday", SYS_settimeofday},
    {"clock_settime", SYS_clock_settime},
    {"lookup_dcookie", SYS_lookup_dcookie},
    {"vhangup", SYS_vhangup},
};

static int do_raw(int argc, char **argv) {
  /* raw NAME: one of raw_calls, with zero arguments. */
  if (argc < 1) return errno = EINVAL, -1;
  for (size_t i = 0; i < sizeof raw_calls / sizeof raw_calls[0]; i++)
    if (!strcmp(argv[0], raw_calls[i].name))
      return syscall(raw_calls[i].nr, 0, 0, 0, 0, 0, 0) < 0 ? -1 : 0;
  return errno = EINVAL, -1;
}

static int list_raw(void) {
  for (size_t i = 0; i < sizeof raw_calls / sizeof raw_calls[0]; i++)
    printf("%s\n", raw_calls[i].name);
  return 0;
}

static void *thread_main(void *arg) { return arg; }

static int do_thread(int argc, char **argv) {
  /* A control: threads still start (glibc tries clone3 first, then clone). */
  (void)argc, (void)argv;
  pthread_t t;
  int e = pthread_create(&t, NULL, thread_main, NULL);
  if (e) return errno = e, -1;
  return pthread_join(t, NULL) ? -1 : 0;
}

static int do_keyctl(int argc, char **argv) {
  (void)argc, (void)argv;
  /* Joining a new session keyring: what a container uses to reach the kernel keyring. */
  long r = syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, "escape-probe");
  return r < 0 ? -1 : 0;
}

static int do_add_key(int argc, char **argv) {
  (void)argc, (void)argv;
  long r = syscall(SYS_add_key, "user", "escape-probe", "x", 1, KEY_SPEC_USER_KEYRING);
  return r < 0 ? -1 : 0;
}

static int do_finit_module(int argc, char **argv) {
  const char *path = argc > 0 ? argv[0] : "/bin/escape_probe";
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  return syscall(SYS_finit_module, fd, "", 0) < 0 ? -1 : 0;
}

static int do_init_module(int argc, char **argv) {
  (void)argc, (void)argv;
  static char image[64];
  return syscall(SYS_init_module, image, sizeof image, "") < 0 ? -1 : 0;
}

static int do_ptrace(int argc, char **argv) {
  if (argc < 1) return errno = EINVAL, -1;
  pid_t pid = atoi(argv[0]);
  if (ptrace(PTRACE_ATTACH, pid, 0, 0) < 0) return -1;
  waitpid(pid, NULL, __WALL);
  ptrace(PTRACE_DETACH, pid, 0, 0);
  return 0;
}

static int do_mknod(int argc, char **argv) {
  /* mknod PATH b|c MAJOR MINOR [r|w], then open it (read, or write with w): the node
   * existing is harmless, opening it is not. */
  if (argc < 4) return errno = EINVAL, -1;
  mode_t type = argv[1][0] == 'b' ? S_IFBLK : S_IFCHR;
  dev_t dev = makedev(atoi(argv[2]), atoi(argv[3]));
  int how = argc > 4 && argv[4][0] == 'w' ? O_WRONLY : O_RDONLY;
  if (mknod(argv[0], type | 0600, dev) < 0) return -1;
  int fd = open(argv[0], how | O_CLOEXEC);
  int saved = errno;
  unlink(argv[0]);
  if (fd < 0) return errno = saved, -1;
  snprintf(detail, sizeof detail, "opened");
  return 0;
}

static int do_capset(int argc, char **argv) {
  /* Adds CAP_SYS_ADMIN to the effective and permitted sets it has. */
  (void)argc, (void)argv;
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) < 0) return -1;
  d[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective |= CAP_TO_MASK(CAP_SYS_ADMIN);
  d[CAP_TO_INDEX(CAP_SYS_ADMIN)].permitted |= CAP_TO_MASK(CAP_SYS_ADMIN);
  return syscall(SYS_capset, &h, d) < 0 ? -1 : 0;
}

static int do_ambient(int argc, char **argv) {
  (void)argc, (void)argv;
  return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0);
}

static int do_setuid0(int argc, char **argv) {
  (void)argc, (void)argv;
  return setuid(0);
}

static int do_open_by_handle(int argc, char **argv) {
  /* The "shocker" attack: a handle to / of the filesystem the path is on, opened without a
   * path walk (so without the pod's root as a boundary). */
  const char *path = argc > 0 ? argv[0] : "/";
  struct file_handle *h = malloc(sizeof *h + MAX_HANDLE_SZ);
  h->handle_bytes = MAX_HANDLE_SZ;
  int mount_id;
  if (name_to_handle_at(AT_FDCWD, path, h, &mount_id, 0) < 0) {
    /* No handle to copy: forge the root inode's (ext4's root is inode 2). */
    h->handle_bytes = 8;
    h->handle_type = 1;
    memset(h->f_handle, 0, 8);
    h->f_handle[0] = 2;
  }
  int mfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (mfd < 0) return -1;
  int fd = open_by_handle_at(mfd, h, O_RDONLY);
  return fd < 0 ? -1 : 0;
}

static int do_open(int argc, char **argv) {
  /* open PATH: reading a file (a host file through /proc/PID/root, an inherited fd). */
  if (argc < 1) return errno = EINVAL, -1;
  int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, detail, sizeof detail - 1);
  if (n < 0) return -1;
  detail[n] = 0;
  detail[strcspn(detail, "\n")] = 0;
  return 0;
}

static int do_openat_fd(int argc, char **argv) {
  /* openat-fd N PATH: PATH relative to descriptor N, as a leaked directory fd allows. */
  if (argc < 2) return errno = EINVAL, -1;
  int fd = openat(atoi(argv[0]), argv[1], O_RDONLY | O_CLOEXEC);
  return fd < 0 ? -1 : 0;
}

static int do_ids(int argc, char **argv) {
  /* What a setuid binary got: its real and effective uid. */
  (void)argc, (void)argv;
  snprintf(detail, sizeof detail, "uid=%d euid=%d", getuid(), geteuid());
  return 0;
}

static const struct {
  const char *name;
  attempt_fn fn;
} probes[] = {
    {"write", write_file},       {"mount", do_mount},
    {"unshare", do_unshare},     {"clone", do_clone},
    {"clone3", do_clone3},       {"thread", do_thread},
    {"chroot-escape", do_chroot_escape},
    {"raw", do_raw},
    {"keyctl", do_keyctl},
    {"add_key", do_add_key},     {"finit_module", do_finit_module},
    {"init_module", do_init_module}, {"ptrace", do_ptrace},
    {"mknod", do_mknod},         {"capset", do_capset},
    {"ambient", do_ambient},     {"setuid0", do_setuid0},
    {"open_by_handle_at", do_open_by_handle}, {"open", do_open},
    {"openat-fd", do_openat_fd}, {"ids", do_ids},
};

/* The descriptors this process has, but the one listing them. */
static int list_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return perror("/proc/self/fd"), 1;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d)) continue;
    char link[300], target[512];
    snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = 0;
    printf("fd %s %s\n", e->d_name, target);
  }
  closedir(d);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: escape_probe PROBE [ARG]...\n");
    return 2;
  }
  if (!strcmp(argv[1], "fds")) return list_fds();
  if (!strcmp(argv[1], "raw-list")) return list_raw();
  attempt_fn fn = NULL;
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
    if (!strcmp(argv[1], probes[i].name)) fn = probes[i].fn;
  if (!fn) {
    fprintf(stderr, "escape_probe: unknown probe %s\n", argv[1]);
    return 2;
  }
  int pipefd[2];
  if (pipe(pipefd) < 0) return perror("pipe"), 1;
  pid_t child = fork();
  if (child < 0) return perror("fork"), 1;
  if (child == 0) {
    close(pipefd[0]);
    char line[600];
    if (fn(argc - 2, argv + 2) == 0)
      snprintf(line, sizeof line, "%s ok%s%s\n", argv[1], *detail ? " " : "", detail);
    else
      snprintf(line, sizeof line, "%s errno=%s\n", argv[1], strerrorname_np(errno));
    (void)!write(pipefd[1], line, strlen(line));
    _exit(0);
  }
  close(pipefd[1]);
  char buf[600];
  ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
  int status;
  waitpid(child, &status, 0);
  if (n > 0) {
    buf[n] = 0;
    fputs(buf, stdout);
  } else if (WIFSIGNALED(status)) {
    printf("%s signal=%d\n", argv[1], WTERMSIG(status));
  } else {
    printf("%s exit=%d\n", argv[1], WEXITSTATUS(status));
  }
  return 0;
}
