// The berth namespace-entering constructor. It runs before the Go runtime
// starts, while the process is still single-threaded, because setns(2) into a
// mount namespace (and a few others) is refused to a multi-threaded process.
//
// It is driven by environment variables set by the parent (see nsenter.go):
//
//   _BERTH_NSENTER  "type:path,type:path,..."  namespaces to join, in order;
//                   every path is opened before any is joined, so that joining
//                   the mount namespace cannot change what the later paths mean.
//   _BERTH_NSFORK   "N": after joining, clone(CLONE_PARENT) once so that the
//                   child really lives in the joined PID namespace (setns on a
//                   PID namespace only affects children). The intermediate
//                   process writes the child's pid as decimal text and a
//                   newline to fd N and exits 0; the child, a sibling of the
//                   intermediate and so a direct child of the caller, goes on
//                   into the Go runtime.
//   _BERTH_SELF_FD  "N": the fd of the sealed copy of berth the process was
//                   exec'd from (runtime/selfexe_linux.go); closed first.
//   _BERTH_WARM     set: a spare init started ahead (runtime/warm_linux.go):
//                   it starts at nice 19, before any thread exists so that
//                   every Go thread inherits it, and so only takes CPU time
//                   nothing else wants; the thread that execs the container
//                   is set back to the default once the spare is taken.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_NS 8

static void die(const char *what) {
	dprintf(2, "berth nsenter: %s: %s\n", what, strerror(errno));
	_exit(125);
}

static int ns_type(const char *t) {
	if (!strcmp(t, "ipc")) return CLONE_NEWIPC;
	if (!strcmp(t, "uts")) return CLONE_NEWUTS;
	if (!strcmp(t, "net")) return CLONE_NEWNET;
	if (!strcmp(t, "pid")) return CLONE_NEWPID;
	if (!strcmp(t, "mnt")) return CLONE_NEWNS;
	if (!strcmp(t, "cgroup")) return CLONE_NEWCGROUP;
	if (!strcmp(t, "user")) return CLONE_NEWUSER;
	return -1;
}

static void join_namespaces(char *spec) {
	int fds[MAX_NS], types[MAX_NS], n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(spec, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		if (!colon || n == MAX_NS) {
			errno = EINVAL;
			die("bad _BERTH_NSENTER");
		}
		*colon = 0;
		types[n] = ns_type(tok);
		if (types[n] < 0) {
			errno = EINVAL;
			die(tok);
		}
		fds[n] = open(colon + 1, O_RDONLY | O_CLOEXEC);
		if (fds[n] < 0) die(colon + 1);
		n++;
	}
	// The user namespace first (it grants the rights for the rest), the
	// mount namespace last (it changes how paths resolve).
	for (int pass = 0; pass < 3; pass++) {
		for (int i = 0; i < n; i++) {
			int want = (pass == 0 && types[i] == CLONE_NEWUSER) ||
				   (pass == 1 && types[i] != CLONE_NEWUSER && types[i] != CLONE_NEWNS) ||
				   (pass == 2 && types[i] == CLONE_NEWNS);
			if (want && setns(fds[i], types[i]) < 0) die("setns");
		}
	}
	for (int i = 0; i < n; i++) close(fds[i]);
}

static void fork_into_pidns(int fd) {
	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0) die("clone");
	if (pid > 0) {
		if (dprintf(fd, "%d\n", pid) < 0) {
			kill(pid, SIGKILL);
			die("report pid");
		}
		_exit(0);
	}
	close(fd);
}

__attribute__((constructor)) static void berth_nsenter(void) {
	char *self = getenv("_BERTH_SELF_FD");
	if (self && *self) close(atoi(self));
	char *warm = getenv("_BERTH_WARM");
	if (warm && *warm) setpriority(PRIO_PROCESS, 0, 19);
	char *spec = getenv("_BERTH_NSENTER");
	if (spec && *spec) join_namespaces(strdup(spec));
	char *forkfd = getenv("_BERTH_NSFORK");
	if (forkfd && *forkfd) fork_into_pidns(atoi(forkfd));
}
