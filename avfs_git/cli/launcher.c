/* avfs's console script as a native program (avfs_git/cli/launcher.py builds it at
 * `make install`): a call the home's resident server answers costs this process a connect,
 * one message and a wait, not an interpreter's start-up (~9 ms of CPU for `python -S`).
 *
 * It does what avfs_git/cli/client.py's `served` does, for the calls it is sure of, and
 * hands every other call, unchanged, to the Python launcher (`python -S -c BODY ARGS...`,
 * the same text launcher.py writes as a script): `proxy exec` and `hook` (their own fast
 * paths), PYTHONPATH set (the avfs found there runs), AVFS_SERVER=off, an argument or
 * working directory that is not ASCII (Python decodes those by the locale), no server, a
 * server that answers with anything but "started"/"code" (nothing ran), and Ctrl-C before
 * the command started (Python prints the interrupted answer).
 *
 * The protocol is avfs_git/cli/resident.py's: the request is a marshal-encoded dict
 * {"v": 1, "stamp": STAMP, "argv": [...], "cwd": CWD, "env": {bytes: bytes}} after its
 * length as eight decimal digits, with fds 0, 1, 2 passed alongside (SCM_RIGHTS); the
 * answers are length-prefixed marshal dicts. Only the types those use are written and
 * read here; tests/test_native_launcher.py checks the request against Python's own
 * marshal and client, and each fallback.
 *
 * Compiled with AVFS_PYTHON (the interpreter), AVFS_STAMP (client.stamp() as that
 * interpreter gives it for this checkout), AVFS_SELF (this program's installed path) and
 * AVFS_BODY (the Python launcher's text) defined. */
#define _GNU_SOURCE
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

extern char **environ;

/* ---- the Python launcher, for every call this program does not serve ---- */

static void run_python(int argc, char **argv, const char *also) {
    char **args = calloc((size_t)argc + 5, sizeof(char *));
    if (args == NULL) {
        perror("avfs");
        _exit(70);
    }
    int n = 0;
    args[n++] = AVFS_PYTHON;
    args[n++] = "-S";
    args[n++] = "-c";
    args[n++] = (char *)(also != NULL ? also : AVFS_BODY);
    for (int i = 1; i < argc; i++) args[n++] = argv[i];
    args[n] = NULL;
    execv(AVFS_PYTHON, args);
    fprintf(stderr, "avfs: cannot run %s: %s\n", AVFS_PYTHON, strerror(errno));
    _exit(127);
}

/* ---- a growing byte buffer and marshal's few types ---- */

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static int put(buf_t *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static int put_u32(buf_t *b, uint32_t v) {
    unsigned char le[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff};
    return put(b, le, 4);
}

static int put_sized(buf_t *b, char type, const char *s, size_t n) {
    if (n > 0x7fffffff) return -1;
    return put(b, &type, 1) || put_u32(b, (uint32_t)n) || put(b, s, n);
}

/* a str: marshal's 'u' (UTF-8; callers pass ASCII only) */
static int put_str(buf_t *b, const char *s) { return put_sized(b, 'u', s, strlen(s)); }

static int ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return 0;
    return 1;
}

/* ---- the global options, as client.py's _rest reads them ---- */

static int rest_at(int argc, char **argv, const char **home) {
    int i = 1;
    while (i < argc) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            i += 1;
        } else if ((strcmp(a, "--home") == 0 || strcmp(a, "--vault") == 0) && i + 1 < argc) {
            if (strcmp(a, "--home") == 0) *home = argv[i + 1];
            i += 2;
        } else if (strncmp(a, "--home=", 7) == 0 || strncmp(a, "--vault=", 8) == 0) {
            if (strncmp(a, "--home=", 7) == 0) *home = a + 7;
            i += 1;
        } else {
            break;
        }
    }
    return i;
}

static int wants_json(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) return 0;
        if (strcmp(argv[i], "--json") == 0) return 1;
    }
    return 0;
}

/* ---- the request ---- */

static int env_seen(char **env, int upto, const char *key, size_t klen) {
    /* os.environ keeps the first of two entries with one name */
    for (int j = 0; j < upto; j++) {
        const char *eq = strchr(env[j], '=');
        if (eq != NULL && (size_t)(eq - env[j]) == klen && memcmp(env[j], key, klen) == 0) return 1;
    }
    return 0;
}

static int request(buf_t *b, int argc, char **argv, const char *cwd) {
    int err = put(b, "{", 1);
    err = err || put_str(b, "v") || put(b, "i", 1) || put_u32(b, 1);
    err = err || put_str(b, "stamp") || put_str(b, AVFS_STAMP);
    err = err || put_str(b, "argv") || put(b, "[", 1) || put_u32(b, (uint32_t)(argc - 1));
    for (int i = 1; i < argc && !err; i++) err = put_str(b, argv[i]);
    err = err || put_str(b, "cwd") || put_str(b, cwd);
    err = err || put_str(b, "env") || put(b, "{", 1);
    for (int i = 0; environ[i] != NULL && !err; i++) {
        const char *eq = strchr(environ[i], '=');
        if (eq == NULL) continue;
        size_t klen = (size_t)(eq - environ[i]);
        if (env_seen(environ, i, environ[i], klen)) continue;
        err = put_sized(b, 's', environ[i], klen) || put_sized(b, 's', eq + 1, strlen(eq + 1));
    }
    err = err || put(b, "0", 1) || put(b, "0", 1);
    return err ? -1 : 0;
}

/* ---- the answers: {"started": PID} / {"code": N} / {"fallback": WHY} ---- */

typedef struct {
    int has_started, has_code;
    long started, code;
} answer_t;

/* the length of the string at p (type t), its bytes at *s; -1 when not a string */
static long str_at(const unsigned char *p, const unsigned char *end, unsigned char t, const unsigned char **s) {
    if (t == 'z' || t == 'Z') {
        if (p >= end) return -1;
        *s = p + 1;
        return *p;
    }
    if (t == 'a' || t == 'A' || t == 'u' || t == 't' || t == 's') {
        if (end - p < 4) return -1;
        long n = (long)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        *s = p + 4;
        return n;
    }
    return -1;
}

static int parse_answer(const unsigned char *p, size_t n, answer_t *a) {
    const unsigned char *end = p + n;
    memset(a, 0, sizeof *a);
    if (p >= end || (*p++ & 0x7f) != '{') return -1;
    for (;;) {
        if (p >= end) return -1;
        unsigned char t = *p++ & 0x7f;
        if (t == '0') return p == end ? 0 : -1;
        const unsigned char *key;
        long klen = str_at(p, end, t, &key);
        if (klen < 0 || key + klen > end) return -1;
        p = key + klen;
        if (p >= end) return -1;
        unsigned char vt = *p++ & 0x7f;
        if (vt == 'i') {
            if (end - p < 4) return -1;
            int32_t v = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
            p += 4;
            if (klen == 7 && memcmp(key, "started", 7) == 0) {
                a->has_started = 1;
                a->started = v;
            } else if (klen == 4 && memcmp(key, "code", 4) == 0) {
                a->has_code = 1;
                a->code = v;
            }
        } else if (vt == 'N' || vt == 'T' || vt == 'F') {
            if (klen == 7 && memcmp(key, "started", 7) == 0) a->has_started = 1; /* not a pid */
        } else {
            const unsigned char *s;
            long slen = str_at(p, end, vt, &s);
            if (slen < 0 || s + slen > end) return -1;
            p = s + slen;
            if (klen == 7 && memcmp(key, "started", 7) == 0) a->has_started = 1; /* not a pid */
        }
    }
}

static volatile sig_atomic_t interrupted;
static int relay_sock = -1, relay_pidfd = -1;

/* the next message into *a: 1, or 0 at the end of the stream / a message not understood,
 * or -2 when interrupted (before "started") */
static int next_answer(int sock, buf_t *in, answer_t *a, int stop_on_interrupt) {
    for (;;) {
        if (in->len >= 8) {
            char digits[9];
            memcpy(digits, in->p, 8);
            digits[8] = 0;
            char *tail;
            long want = strtol(digits, &tail, 10);
            if (*tail != 0 || want < 0) return 0;
            if (in->len >= 8 + (size_t)want) {
                int ok = parse_answer((unsigned char *)in->p + 8, (size_t)want, a) == 0;
                memmove(in->p, in->p + 8 + want, in->len - 8 - (size_t)want);
                in->len -= 8 + (size_t)want;
                return ok ? 1 : 0;
            }
        }
        char chunk[65536];
        ssize_t got = recv(sock, chunk, sizeof chunk, 0);
        if (got < 0 && errno == EINTR) {
            if (stop_on_interrupt && interrupted) return -2;
            continue;
        }
        if (got <= 0) return 0;
        if (put(in, chunk, (size_t)got) != 0) return 0;
    }
}

static void on_interrupt(int sig) {
    (void)sig;
    interrupted = 1;
}

static void relay(int sig) {
    int saved = errno;
    if (relay_pidfd >= 0 && syscall(SYS_pidfd_send_signal, relay_pidfd, sig, NULL, 0) == 0) {
        errno = saved;
        return;
    }
    char msg[2] = {'S', (char)sig};
    if (relay_sock >= 0) (void)send(relay_sock, msg, 2, MSG_NOSIGNAL);
    errno = saved;
}

static int home_dir(const char *given, char *out, size_t size) {
    const char *env_home = getenv("AVFS_HOME");
    int n;
    if ((given == NULL || !*given) && env_home != NULL && *env_home) given = env_home;
    if (given == NULL || !*given) {
        const char *home = getenv("HOME");
        if (home == NULL) {
            struct passwd *pw = getpwuid(getuid());
            if (pw == NULL) return -1;
            home = pw->pw_dir;
        }
        size_t len = strlen(home);
        while (len > 0 && home[len - 1] == '/') len--;
        n = snprintf(out, size, "%.*s/.avfs", (int)len, home);
    } else if (given[0] != '/') {
        char cwd[4096];
        if (getcwd(cwd, sizeof cwd) == NULL) return -1;
        n = snprintf(out, size, "%s/%s", cwd, given);
    } else {
        n = snprintf(out, size, "%s", given);
    }
    return (n < 0 || (size_t)n >= size || !ascii(out)) ? -1 : 0;
}

int main(int argc, char **argv) {
    const char *given = NULL, *server = getenv("AVFS_SERVER");
    if (getenv("PYTHONPATH") != NULL || (server != NULL && strcmp(server, "off") == 0))
        run_python(argc, argv, NULL);
    int r = rest_at(argc, argv, &given);
    if ((r + 1 < argc && strcmp(argv[r], "proxy") == 0 && strcmp(argv[r + 1], "exec") == 0) ||
        (r < argc && strcmp(argv[r], "hook") == 0))
        run_python(argc, argv, NULL);
    for (int i = 1; i < argc; i++)
        if (!ascii(argv[i])) run_python(argc, argv, NULL);
    char cwd[4096], home[4096];
    if (getcwd(cwd, sizeof cwd) == NULL || !ascii(cwd) || home_dir(given, home, sizeof home) != 0)
        run_python(argc, argv, NULL);

    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if ((size_t)snprintf(addr.sun_path, sizeof addr.sun_path, "%s/run/cli.sock", home) >= sizeof addr.sun_path)
        run_python(argc, argv, NULL);
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0) {
        if (sock >= 0) close(sock);
        run_python(argc, argv, NULL); /* it starts a server for the next call */
    }

    buf_t req = {0}, msg = {0};
    if (request(&req, argc, argv, cwd) != 0) {
        close(sock);
        run_python(argc, argv, NULL);
    }
    char head[9];
    snprintf(head, sizeof head, "%08lu", (unsigned long)req.len);
    if (req.len > 99999999 || put(&msg, head, 8) != 0 || put(&msg, req.p, req.len) != 0) {
        close(sock);
        run_python(argc, argv, NULL);
    }
    int fds[3] = {0, 1, 2};
    char control[CMSG_SPACE(sizeof fds)];
    memset(control, 0, sizeof control);
    struct iovec iov = {.iov_base = msg.p, .iov_len = msg.len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(cm), fds, sizeof fds);
    /* the rest of a long request after the first part carried the descriptors */
    ssize_t sent = sendmsg(sock, &mh, MSG_NOSIGNAL);
    size_t off = sent > 0 ? (size_t)sent : 0;
    while (sent >= 0 && off < msg.len) {
        sent = send(sock, msg.p + off, msg.len - off, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR) {
            sent = 0;
            continue;
        }
        if (sent > 0) off += (size_t)sent;
    }
    if (sent < 0) {
        close(sock);
        run_python(argc, argv, NULL);
    }

    struct sigaction sa = {.sa_handler = on_interrupt};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: recv returns EINTR */
    buf_t in = {0};
    answer_t first;
    int got = next_answer(sock, &in, &first, 1);
    if (got == -2) {
        /* Ctrl-C before the command started: the server sees this end close and does not
         * start it; Python prints the answer a direct call so stopped gives */
        close(sock);
        run_python(argc, argv,
                   wants_json(argc, argv)
                       ? "import sys\nsys.path[0:1] = []\nsys.path.append(" AVFS_ROOT_REPR
                         ")\nfrom avfs_git.cli.execopts import interrupted\nsys.exit(interrupted(True))\n"
                       : "import sys\nsys.path[0:1] = []\nsys.path.append(" AVFS_ROOT_REPR
                         ")\nfrom avfs_git.cli.execopts import interrupted\nsys.exit(interrupted(False))\n");
    }
    if (got != 1 || (!first.has_started && !first.has_code)) {
        close(sock);
        run_python(argc, argv, NULL); /* nothing ran: run it there */
    }
    if (!first.has_started) return (int)first.code;

    relay_sock = sock;
    relay_pidfd = first.started > 0 ? (int)syscall(SYS_pidfd_open, (pid_t)first.started, 0) : -1;
    struct sigaction rs = {.sa_handler = relay};
    sigemptyset(&rs.sa_mask);
    sigaction(SIGINT, &rs, NULL);
    sigaction(SIGTERM, &rs, NULL);
    sigaction(SIGHUP, &rs, NULL);
    answer_t done;
    got = next_answer(sock, &in, &done, 0);
    if (got != 1 || !done.has_code) {
        fputs("avfs: the warm server went away while the command ran (AVFS_SERVER=off runs without it)\n", stderr);
        return 70;
    }
    return (int)done.code;
}
