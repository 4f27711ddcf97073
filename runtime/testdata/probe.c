// probe: attempts, from inside a container, things the runtime must
// prevent. Each check prints "<name> ok" when the attempt failed as it
// should, "<name> BREACH <detail>" when it succeeded. Built static by the
// tests with the host's gcc.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int breaches;

static void report(const char *name, int failed, const char *detail) {
	if (failed) {
		printf("%s ok\n", name);
	} else {
		printf("%s BREACH %s\n", name, detail);
		breaches++;
	}
}

// exe_race holds every /proc/N/exe it can open for a few seconds (while
// the test execs into the container), then tries to write through them
// once their processes are gone, as CVE-2019-5736 did to runc.
static int exe_race(void) {
	int held[256], n = 0;
	for (int round = 0; round < 1500 && n < 256; round++) {
		for (int pid = 2; pid < 64 && n < 256; pid++) {
			char p[64];
			snprintf(p, sizeof p, "/proc/%d/exe", pid);
			char target[256] = {0};
			if (readlink(p, target, sizeof target - 1) <= 0) continue;
			// A file of the container's own rootfs is ours to break.
			if (target[0] == '/' && access(target, F_OK) == 0) continue;
			int fd = open(p, O_RDONLY | O_CLOEXEC);
			if (fd < 0) continue;
			// Between readlink and open the process may have exec'd the
			// container's own command: look at what was opened, not at
			// what the link said a moment before.
			char self[64], opened[256] = {0};
			snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
			if (readlink(self, opened, sizeof opened - 1) <= 0 ||
			    (opened[0] == '/' && access(opened, F_OK) == 0)) {
				close(fd);
				continue;
			}
			if (n < 3) printf("holding %s\n", opened);
			held[n++] = fd;
		}
		usleep(1000);
	}
	sleep(1);
	int wrote = 0;
	for (int i = 0; i < n; i++) {
		char p[64];
		snprintf(p, sizeof p, "/proc/self/fd/%d", held[i]);
		int fd = open(p, O_WRONLY);
		if (fd >= 0 && write(fd, "PWNED", 5) == 5) wrote++;
	}
	printf("held %d wrote %d\n", n, wrote);
	report("exe-race", wrote == 0, "wrote through a held /proc/N/exe");
	return wrote ? 1 : 0;
}

int main(int argc, char **argv) {
	if (argc > 1 && !strcmp(argv[1], "exe-race")) return exe_race();
	// Overwrite the runtime binary through /proc/<pid>/exe of any process
	// whose exe is outside the rootfs (a berth child during exec).
	for (int pid = 1; pid < 64; pid++) {
		char p[64];
		snprintf(p, sizeof p, "/proc/%d/exe", pid);
		int fd = open(p, O_WRONLY | O_TRUNC);
		if (fd >= 0) {
			report("overwrite-exe", 0, p);
			close(fd);
		}
	}
	report("overwrite-self-exe", open("/proc/self/exe", O_WRONLY) < 0, "/proc/self/exe");
	// Leaked descriptors: anything above 2 open at exec.
	int leaked = 0;
	for (int fd = 3; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0) leaked++;
	report("leaked-fds", leaked == 0, "fd above 2 open");
	char cwd[4096];
	report("cwd-inside", getcwd(cwd, sizeof cwd) && cwd[0] == '/', "cwd outside root");
	// A host disk through mknod (allowed by CAP_MKNOD, refused by the
	// device cgroup on open).
	mknod("/dev/probe-sda", S_IFBLK | 0600, makedev(8, 0));
	report("mknod-disk", open("/dev/probe-sda", O_RDONLY) < 0, "opened block device 8:0");
	mknod("/dev/probe-mem", S_IFCHR | 0600, makedev(1, 1));
	report("mknod-mem", open("/dev/probe-mem", O_RDONLY) < 0, "opened /dev/mem");
	report("mount", mount("tmpfs", "/tmp", "tmpfs", 0, NULL) < 0, "mounted tmpfs");
	report("unshare", unshare(CLONE_NEWNS | CLONE_NEWUSER) < 0 && unshare(CLONE_NEWNET) < 0, "unshared");
	report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 1) < 0, "keyctl worked");
	report("add_key", syscall(SYS_add_key, "user", "x", "y", 1, -3) < 0, "add_key worked");
	report("init_module", syscall(SYS_init_module, "", 0, "") < 0 && errno != EFAULT, "init_module reached the kernel");
	report("finit_module", syscall(SYS_finit_module, 0, "", 0) < 0 && errno == EPERM, "finit_module reached the kernel");
	// Masked and read-only /proc paths.
	char buf[64];
	int fd = open("/proc/kcore", O_RDONLY);
	report("read-kcore", fd < 0 || read(fd, buf, sizeof buf) <= 0, "read /proc/kcore");
	fd = open("/proc/keys", O_RDONLY);
	report("read-keys", fd < 0 || read(fd, buf, sizeof buf) <= 0, "read /proc/keys");
	fd = open("/proc/sys/kernel/hostname", O_WRONLY);
	report("write-proc-sys", fd < 0 || write(fd, "x", 1) < 0, "wrote /proc/sys");
	fd = open("/proc/sysrq-trigger", O_WRONLY);
	report("write-sysrq", fd < 0 || write(fd, "h", 1) < 0, "wrote /proc/sysrq-trigger");
	report("write-sys", open("/sys/kernel/uevent_helper", O_WRONLY) < 0, "opened /sys for writing");
	// Host processes: in a new PID namespace we are 1 and see few others.
	int seen = 0;
	for (int pid = 1; pid < 4194304 && seen < 100; pid += (pid < 1000 ? 1 : 997)) {
		char p[64];
		snprintf(p, sizeof p, "/proc/%d", pid);
		struct stat st;
		if (stat(p, &st) == 0) seen++;
	}
	report("host-processes", getpid() <= 10 && seen < 10, "sees many processes");
	// Capabilities beyond Docker's default set.
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long eff = ~0ULL, bnd = ~0ULL;
	while (f && fgets(line, sizeof line, f)) {
		sscanf(line, "CapEff: %llx", &eff);
		sscanf(line, "CapBnd: %llx", &bnd);
	}
	unsigned long long docker = 0xa80425fbULL;
	report("caps", (eff & ~docker) == 0 && (bnd & ~docker) == 0, "capability outside the default set");
	int escaped = 0;
	if (chroot("/tmp") == 0) {
		chdir("../../../..");
		escaped = access("run/berth-escape-canary", F_OK) == 0;
	}
	report("chroot-escape", !escaped, "reached host file");
	printf("breaches %d\n", breaches);
	return breaches ? 1 : 0;
}
