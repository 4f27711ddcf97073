// The C path of `berth [--run-root DIR] runtime run [--bundle DIR] ID`.
//
// `berth runtime run` of a short container is dominated by process starts:
// this one, the container's init, the container. A Go process pays its
// runtime's start and the initialisation of every package linked in before
// any code of ours runs. This constructor runs before all that, and when the
// command line is a plain attached `run` (no -d, --pid-file,
// --console-socket or other flag) and a monitor is listening, it is the
// whole client: one request on the monitor's socket with our stdio as
// SCM_RIGHTS ({"op":"run","wait":true,"remove":true,"noTerminal":true}),
// the signals runc forwards sent as kill requests, and the container's
// exit status returned once the monitor reports it stopped and deleted.
//
// Anything else returns to the Go path (runtime/cli), which does the same
// and more: no monitor yet (it starts one), a spec with a terminal (the
// monitor refuses noTerminal before creating anything: the Go path relays
// a pty), an unusual argument. BERTH_NO_FAST_PATH disables this too.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int sigpipe_w = -1;

static void on_signal(int sig) {
	unsigned char b = (unsigned char)sig;
	int e = errno;
	if (write(sigpipe_w, &b, 1) < 0) {
	}
	errno = e;
}

// json_str appends s as a JSON string to out (of size n); 0 when too long.
static int json_str(char *out, size_t n, const char *s) {
	size_t o = strlen(out);
	if (o + 2 >= n) return 0;
	out[o++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (o + 8 >= n) return 0;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = c;
		} else if (c < 0x20) {
			o += snprintf(out + o, n - o, "\\u%04x", c);
		} else {
			out[o++] = c;
		}
	}
	out[o++] = '"';
	out[o] = 0;
	return 1;
}

static int valid_id(const char *id) {
	size_t n = strlen(id);
	if (n == 0 || n > 128) return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-'))) return 0;
	}
	return 1;
}

static int dial(const char *sock) {
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(sock) >= sizeof(sa.sun_path)) return -1;
	strcpy(sa.sun_path, sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

// Bytes read from the monitor past the last line returned. Answers are
// read in blocks: one byte per read(2) was ~2,000 system calls for the two
// answers of a run (each carries the container's state).
static char pending[1 << 16];
static size_t npending;

// read_line reads one '\n'-terminated line into buf; its length, or -1.
static ssize_t read_line(int fd, char *buf, size_t n) {
	for (;;) {
		char *nl = memchr(pending, '\n', npending);
		if (nl) {
			size_t len = (size_t)(nl - pending);
			if (len + 1 > n) return -1;
			memcpy(buf, pending, len);
			buf[len] = 0;
			npending -= len + 1;
			memmove(pending, nl + 1, npending);
			return (ssize_t)len;
		}
		if (npending == sizeof(pending)) return -1;
		ssize_t r = read(fd, pending + npending, sizeof(pending) - npending);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) return -1;
		npending += (size_t)r;
	}
}

// A response is {"error":...,"kind":...} or {"state":{...},"runExit":N}
// (Go marshals the fields in that order): error_of returns the error's
// value, or NULL for a success.
static const char *error_of(const char *line) {
	return strncmp(line, "{\"error\":", 9) ? NULL : line + 9;
}

// run_exit finds the last "runExit": (after the state, whatever it holds).
static int run_exit(const char *line) {
	const char *pat = "\"runExit\":", *last = NULL;
	for (const char *p = strstr(line, pat); p; p = strstr(p + 1, pat)) last = p;
	return last ? atoi(last + strlen(pat)) : 0;
}

// print_error prints a response's "error" (JSON-unescaped) as runc does.
static void print_error(const char *v) {
	fputs("berth: ", stderr);
	if (*v == '"') v++;
	for (; *v && *v != '"'; v++) {
		if (*v == '\\' && v[1]) {
			v++;
			if (*v == 'n') {
				fputc('\n', stderr);
				continue;
			}
			if (*v == 'u') { // \u00XX, as Go escapes <, >, &
				unsigned c = 0;
				if (sscanf(v + 1, "%4x", &c) == 1) fputc((int)c, stderr);
				v += 4;
				continue;
			}
		}
		fputc(*v, stderr);
	}
	fputc('\n', stderr);
}

static void send_kill(const char *sock, const char *id, int sig) {
	int fd = dial(sock);
	if (fd < 0) return;
	char req[512];
	snprintf(req, sizeof(req), "{\"op\":\"kill\",\"id\":\"%s\",\"signal\":%d}\n", id, sig);
	if (write(fd, req, strlen(req)) > 0) {
		char line[4096];
		read_line(fd, line, sizeof(line));
	}
	close(fd);
}

static void fast_run(int argc, char **argv) {
	char *off = getenv("BERTH_NO_FAST_PATH");
	if ((off && *off) || getenv("_BERTH_CHILD")) return;
	const char *run_root = getenv("BERTH_RUN_ROOT");
	if (!run_root || !*run_root) run_root = "/run/berth";
	int i = 1;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--run-root") && i + 1 < argc) {
			run_root = argv[++i];
		} else if (!strncmp(argv[i], "--run-root=", 11)) {
			run_root = argv[i] + 11;
		} else {
			break;
		}
	}
	if (i + 1 >= argc || strcmp(argv[i], "runtime") || strcmp(argv[i + 1], "run")) return;
	const char *bundle = NULL, *id = NULL;
	for (i += 2; i < argc; i++) {
		const char *a = argv[i];
		if ((!strcmp(a, "--bundle") || !strcmp(a, "-b") || !strcmp(a, "-bundle")) && i + 1 < argc) {
			bundle = argv[++i];
		} else if (!strncmp(a, "--bundle=", 9)) {
			bundle = a + 9;
		} else if (!strcmp(a, "--no-pivot") || !strcmp(a, "--no-new-keyring")) {
		} else if (a[0] == '-' || id) {
			return; // a flag of the Go path's, or a second argument
		} else {
			id = a;
		}
	}
	if (!id || !valid_id(id)) return;
	char abs[PATH_MAX];
	if (!realpath(bundle ? bundle : ".", abs)) return;
	char sock[PATH_MAX];
	if (snprintf(sock, sizeof(sock), "%s/runtime/monitor.sock", run_root) >= (int)sizeof(sock)) return;

	char req[PATH_MAX * 2 + 512] = "{\"op\":\"run\",\"id\":\"";
	strcat(req, id);
	strcat(req, "\",\"options\":{\"bundle\":");
	if (!json_str(req, sizeof(req) - 96, abs)) return;
	strcat(req, "},\"nfds\":3,\"wait\":true,\"remove\":true,\"noTerminal\":true}\n");
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) return;
	int fd = dial(sock);
	if (fd < 0) { // no monitor: the Go path starts one
		close(pipefd[0]);
		close(pipefd[1]);
		return;
	}

	// Signals runc forwards, caught from here on (the Go path would too).
	sigpipe_w = pipefd[1];
	int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++) sigaction(sigs[k], &sa, NULL);

	int stdio[3] = {0, 1, 2};
	char cbuf[CMSG_SPACE(sizeof(stdio))];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec iov = {.iov_base = req, .iov_len = strlen(req)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(stdio));
	memcpy(CMSG_DATA(cm), stdio, sizeof(stdio));
	if (sendmsg(fd, &msg, MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		fprintf(stderr, "berth: monitor: %s\n", strerror(errno));
		exit(1);
	}
	char line[1 << 16];
	if (read_line(fd, line, sizeof(line)) < 0) {
		fprintf(stderr, "berth: monitor: no answer\n");
		exit(1);
	}
	const char *err = error_of(line);
	if (err && strstr(err, "\"kind\":\"terminal\"}")) {
		// Nothing was created: the Go path relays the terminal.
		close(fd);
		for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++) signal(sigs[k], SIG_DFL);
		close(pipefd[0]);
		close(pipefd[1]);
		return;
	}
	if (err) {
		print_error(err);
		exit(1);
	}
	// Running: forward signals until the second answer.
	while (!memchr(pending, '\n', npending)) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = pipefd[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR) continue;
			break;
		}
		if (p[1].revents & POLLIN) {
			unsigned char s;
			while (read(pipefd[0], &s, 1) == 1) send_kill(sock, id, s);
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) break;
	}
	if (read_line(fd, line, sizeof(line)) < 0) {
		fprintf(stderr, "berth: monitor: no answer\n");
		exit(1);
	}
	if ((err = error_of(line))) {
		print_error(err);
		exit(1);
	}
	exit(run_exit(line));
}

__attribute__((constructor)) static void berth_fast_run(int argc, char **argv, char **envp) {
	(void)envp;
	fast_run(argc, argv);
}
