/* avfs's console script as a native program (avfs_git/cli/launcher.py builds it at
 * `make install`): a call the home's resident server answers costs this process a connect,
 * one message and a wait, not an interpreter's start-up (~9 ms of CPU for `python -S`).
 *
 * It does what avfs_git/cli/client.py's `served` does, for the calls it is sure of, and
 * hands every other call, unchanged, to the Python launcher (`python -S -c BODY ARGS...`,
 * the same text launcher.py writes as a script): `proxy exec` and `hook` (their own fast
 * paths), PYTHONPATH set (the avfs found there runs), AVFS_SERVER=off, an argument or
 * working directory that is not ASCII (Python decodes those by the locale), no server or
 * one of another user, a server that answers "fallback" or closes before any answer
 * (nothing ran), and Ctrl-C before the command started (Python prints the interrupted
 * answer). An answer it cannot read exits 70: it may have followed a start, and running
 * the call again could run it twice.
 *
 * The protocol is avfs_git/cli/resident.py's: the request is a marshal-encoded dict
 * {"v": 1, "stamp": STAMP, "argv": [...], "cwd": CWD, "umask": N, "env": {bytes: bytes}} after its
 * length as eight decimal digits, with fds 0, 1, 2 passed alongside (SCM_RIGHTS); the
 * answers are length-prefixed marshal dicts. Only the types those use are written and
 * read here; tests/test_native_launcher.py checks the request against Python's own
 * marshal and client, and each fallback; tests/test_launcher_fuzz.py builds this with
 * AddressSanitizer and UBSan and drives its readers with answers cut short and mutated.
 *
 * Compiled with AVFS_PYTHON (the interpreter), AVFS_STAMP (client.stamp() as that
 * interpreter gives it for this checkout), AVFS_SELF (this program's installed path) and
 * AVFS_BODY (the Python launcher's text) defined. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

/* ``msg`` whole on ``sock``, the ``n`` descriptors ``fds`` passed with its first part
 * (SCM_RIGHTS; none when n is 0); -1 when it did not all go (the peer read none of it
 * whole: nobody ran it) */
static int send_with_fds(int sock, const buf_t *msg, const int *fds, int n) {
    char control[CMSG_SPACE(3 * sizeof(int))];
    memset(control, 0, sizeof control);
    struct iovec iov = {.iov_base = msg->p, .iov_len = msg->len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > 0 && n <= 3) {
        mh.msg_control = control;
        mh.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, (size_t)n * sizeof(int));
    }
    ssize_t sent;
    do sent = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    size_t off = sent > 0 ? (size_t)sent : 0;
    while (sent >= 0 && off < msg->len) { /* the rest of a long message */
        sent = send(sock, msg->p + off, msg->len - off, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR) sent = 0;
        else if (sent > 0) off += (size_t)sent;
    }
    return sent < 0 ? -1 : 0;
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

/* the names of the environment seen so far: os.environ keeps the first of two entries
 * with one name. A hash set (open addressing), not a scan of the entries before: an
 * environment of hundreds of thousands of short entries (ARG_MAX allows ~500k) made that
 * scan quadratic, minutes of CPU before the call was sent */
typedef struct {
    const char **keys;
    size_t *lens, mask;
} names_t;

static int names_init(names_t *t) {
    size_t n = 0, cap = 16;
    while (environ[n] != NULL) n++;
    while (cap < 2 * n + 2) cap *= 2;
    t->keys = calloc(cap, sizeof *t->keys);
    t->lens = calloc(cap, sizeof *t->lens);
    t->mask = cap - 1;
    return t->keys != NULL && t->lens != NULL ? 0 : -1;
}

/* 1 when ``key`` was seen already, else 0 (and it is now) */
static int env_seen(names_t *t, const char *key, size_t klen) {
    size_t h = 1469598103934665603u;
    for (size_t i = 0; i < klen; i++) h = (h ^ (unsigned char)key[i]) * 1099511628211u;
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        if (t->keys[i] == NULL) {
            t->keys[i] = key;
            t->lens[i] = klen;
            return 0;
        }
        if (t->lens[i] == klen && memcmp(t->keys[i], key, klen) == 0) return 1;
    }
}

static int request(buf_t *b, int argc, char **argv, const char *cwd) {
    int err = put(b, "{", 1);
    err = err || put_str(b, "v") || put(b, "i", 1) || put_u32(b, 1);
    err = err || put_str(b, "stamp") || put_str(b, AVFS_STAMP);
    err = err || put_str(b, "argv") || put(b, "[", 1) || put_u32(b, (uint32_t)(argc - 1));
    for (int i = 1; i < argc && !err; i++) err = put_str(b, argv[i]);
    err = err || put_str(b, "cwd") || put_str(b, cwd);
    mode_t mask = umask(022);  /* the call's, as a direct call has it (read, put back) */
    umask(mask);
    err = err || put_str(b, "umask") || put(b, "i", 1) || put_u32(b, (uint32_t)mask);
    err = err || put_str(b, "env") || put(b, "{", 1);
    names_t seen;
    if (names_init(&seen) != 0) return -1;
    for (int i = 0; environ[i] != NULL && !err; i++) {
        const char *eq = strchr(environ[i], '=');
        if (eq == NULL) continue;
        size_t klen = (size_t)(eq - environ[i]);
        if (env_seen(&seen, environ[i], klen)) continue;
        err = put_sized(b, 's', environ[i], klen) || put_sized(b, 's', eq + 1, strlen(eq + 1));
    }
    err = err || put(b, "0", 1) || put(b, "0", 1);
    return err ? -1 : 0;
}

/* valid UTF-8 as Python decodes it: with ``surrogates``, an encoded surrogate too (the
 * "surrogatepass" marshal reads a str with) */
static int utf8n(const unsigned char *p, size_t n, int surrogates) {
    const unsigned char *end = p + n;
    while (p < end) {
        int extra = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
        if (extra < 0 || (extra == 1 && *p < 0xc2) || end - p <= extra) return 0;
        unsigned cp = extra ? (*p & (0x3f >> extra)) : *p;
        for (int k = 1; k <= extra; k++) {
            if ((p[k] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (p[k] & 0x3f);
        }
        if ((extra == 2 && (cp < 0x800 || (!surrogates && cp >= 0xd800 && cp < 0xe000))) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        p += extra + 1;
    }
    return 1;
}

/* valid UTF-8 (Python then decodes it to the same text marshal's 'u' carries) */
static int utf8(const char *s) { return utf8n((const unsigned char *)s, strlen(s), 0); }

/* ---- the answers: {"started": PID} / {"code": N} / {"fallback": WHY} ---- */

typedef struct {
    int has_started, has_code, has_fallback;
    long started, code;
} answer_t;

/* a message's length: its first eight bytes, decimal digits all (not strtol's reading:
 * no sign, no blank); -1 when they are not */
static long len8(const char *p) {
    long n = 0;
    for (int i = 0; i < 8; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        n = n * 10 + (p[i] - '0');
    }
    return n;
}

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
        if (t == 's') return -1; /* a bytes key: never "code" to Python */
        const unsigned char *key;
        long klen = str_at(p, end, t, &key);
        if (klen < 0 || klen > end - key || ((t == 'u' || t == 't') && !utf8n(key, (size_t)klen, 1))) return -1;
        p = key + klen;
        if (p >= end) return -1;
        unsigned char vt = *p++ & 0x7f;
        if (klen == 8 && memcmp(key, "fallback", 8) == 0) a->has_fallback = 1;
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
            if (slen < 0 || slen > end - s || ((vt == 'u' || vt == 't') && !utf8n(s, (size_t)slen, 1))) return -1;
            p = s + slen;
            if (klen == 7 && memcmp(key, "started", 7) == 0) a->has_started = 1; /* not a pid */
        }
    }
}

static volatile sig_atomic_t interrupted;
static int relay_sock = -1, relay_pidfd = -1;

/* the server's answers are a few dozen bytes: a length past this is not one of them */
#define ANSWER_MAX 65536

/* the next message into *a: 1; 0 when the stream ended (or was reset) before any byte of
 * it; -1 when what came is not an answer (not a length, a message cut short, one that
 * does not parse); -2 when interrupted (before "started") */
static int next_answer(int sock, buf_t *in, answer_t *a, int stop_on_interrupt) {
    for (;;) {
        if (in->len >= 8) {
            long want = len8(in->p);
            if (want < 0 || want > ANSWER_MAX) return -1;
            if (in->len >= 8 + (size_t)want) {
                int ok = parse_answer((unsigned char *)in->p + 8, (size_t)want, a) == 0;
                memmove(in->p, in->p + 8 + want, in->len - 8 - (size_t)want);
                in->len -= 8 + (size_t)want;
                return ok ? 1 : -1;
            }
        }
        char chunk[4096];
        if (stop_on_interrupt && interrupted) {
            /* what came already is read first: a Ctrl-C that broke the wait as "started" came
             * (the kernel's recv answers EINTR, not the data, when a signal is pending as it
             * wakes) is the started command's, not one before its start */
            ssize_t ready = recv(sock, chunk, sizeof chunk, MSG_DONTWAIT);
            if (ready > 0 && put(in, chunk, (size_t)ready) == 0) continue;
            return -2;
        }
        ssize_t got = recv(sock, chunk, sizeof chunk, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return in->len == 0 ? 0 : -1;
        if (put(in, chunk, (size_t)got) != 0) return -1;
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


/* ---- `proxy exec` answered by a live mount's daemon (cli/execclient.py's `fast`) ---- */

/* marshal objects of the daemon's reply: str, bytes, int, None, bools, back-references */
typedef struct {
    char type; /* 's' str (its bytes UTF-8), 'L' str of other bytes, 'b' bytes, 'i' int, 'N', 'T', 'F' */
    const unsigned char *s;
    long n;
} mval_t;

typedef struct {
    const unsigned char *p, *end;
    mval_t refs[256];
    int nrefs;
} mreader_t;

static int m_read(mreader_t *r, mval_t *v) {
    if (r->p >= r->end) return -1;
    unsigned char code = *r->p++, t = code & 0x7f;
    int flag = code & 0x80;
    memset(v, 0, sizeof *v);
    if (t == 'N' || t == 'T' || t == 'F') {
        v->type = (char)t;
        return 0; /* (never a reference: Python's reader keeps none of these) */
    } else if (t == 'i') {
        if (r->end - r->p < 4) return -1;
        v->type = 'i';
        v->n = (int32_t)((uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24);
        r->p += 4;
    } else if (t == 'r') {
        if (r->end - r->p < 4) return -1;
        uint32_t i = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
        r->p += 4;
        if (i >= (uint32_t)r->nrefs || r->refs[i].type == 0) return -1;
        *v = r->refs[i];
        return 0;
    } else {
        const unsigned char *s;
        long n = str_at(r->p, r->end, t, &s);
        if (n < 0 || n > r->end - s) return -1;
        v->type = t == 's' ? 'b' : 's';
        v->s = s;
        v->n = n;
        r->p = s + n;
        if ((t == 'u' || t == 't') && !utf8n(s, (size_t)n, 1)) return -1; /* marshal.loads fails */
        if (t == 'a' || t == 'A' || t == 'z' || t == 'Z')
            for (long i = 0; i < n; i++)
                if (s[i] >= 0x80) v->type = 'L'; /* read as Latin-1: written as other bytes */
    }
    if (flag) {
        if (r->nrefs >= 256) return -1;
        r->refs[r->nrefs++] = *v;
    }
    return 0;
}

typedef struct {
    int fallback, has_code;
    long code;
    mval_t out, err;
} reply_t;

/* 0: read; -1: not a reply this program can print (Python prints it) */
static int parse_reply(const unsigned char *p, size_t n, reply_t *rep) {
    static mreader_t r;
    memset(&r, 0, sizeof r);
    memset(rep, 0, sizeof *rep);
    r.p = p;
    r.end = p + n;
    if (r.p >= r.end || (*r.p & 0x7f) != '{') return -1;
    if (*r.p++ & 0x80) r.nrefs++; /* the dict's own place among the references */
    for (;;) {
        if (r.p < r.end && *r.p == '0') return ++r.p == r.end ? 0 : -1;
        mval_t key, val;
        if (m_read(&r, &key) != 0 || key.type != 's' || m_read(&r, &val) != 0) return -1;
        if (key.n == 8 && memcmp(key.s, "fallback", 8) == 0) {
            rep->fallback = !(val.type == 'N' || val.type == 'F' || (val.type == 'i' && val.n == 0) ||
                              ((val.type == 's' || val.type == 'b' || val.type == 'L') && val.n == 0));
        } else if (key.n == 4 && memcmp(key.s, "code", 4) == 0) {
            if (val.type != 'i') return -1;
            rep->has_code = 1;
            rep->code = val.n;
        } else if (key.n == 3 && memcmp(key.s, "out", 3) == 0) {
            rep->out = val;
        } else if (key.n == 3 && memcmp(key.s, "err", 3) == 0) {
            rep->err = val;
        }
    }
}

/* UTF-8 text that Python would write as these same bytes: no encoded surrogate (a string
 * decoded with surrogateescape, which Python's stream writes per its error handler) */
static int plain_text(const mval_t *v) { return v->type == 's' && utf8n(v->s, (size_t)v->n, 0); }

static int write_all(int fd, const unsigned char *s, long n) {
    while (n > 0) {
        ssize_t w = write(fd, s, (size_t)n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        s += w;
        n -= w;
    }
    return 0;
}

/* text this program may send as the str Python would decode it to: ASCII always; other
 * UTF-8 where Python's file system encoding is UTF-8 (a UTF-8 locale, no PYTHONUTF8=0) */
static int text_ok(const char *s) {
    static int locale_utf8 = -1;
    if (ascii(s)) return 1;
    if (locale_utf8 < 0) {
        const char *lc = getenv("LC_ALL"), *utf8_mode = getenv("PYTHONUTF8");
        if (lc == NULL || !*lc) lc = getenv("LC_CTYPE");
        if (lc == NULL || !*lc) lc = getenv("LANG");
        locale_utf8 = lc != NULL && (strstr(lc, "UTF-8") || strstr(lc, "utf8") || strstr(lc, "UTF8") || strstr(lc, "utf-8")) &&
                      !(utf8_mode != NULL && strcmp(utf8_mode, "0") == 0);
    }
    return locale_utf8 && utf8(s);
}

/* whether process ``pid`` is gone or ending, or started after the exec file naming it was
 * ``written`` (its mtime): then not the daemon that wrote it but a process given its pid
 * since, which may have bound the dead daemon's abstract name (execclient.dying) */
static int dying(pid_t pid, const struct timespec *written) {
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 1;
    ssize_t n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0) return 1;
    stat[n] = 0;
    char *close_paren = strrchr(stat, ')');
    if (close_paren == NULL || close_paren[1] == 0 || close_paren[2] == 0) return 1;
    char state = close_paren[2];
    if (state == 'Z' || state == 'X' || state == 'x') return 1;
    /* its flags (the 7th field after the state): PF_EXITING, as execclient.stat_dying */
    char *field = close_paren + 2;
    for (int i = 0; i < 6; i++) {
        field = strchr(field, ' ');
        if (field == NULL) return 1;
        field++;
    }
    if ((strtoul(field, NULL, 10) & 0x4) != 0) return 1;
    for (int i = 6; i < 19; i++) { /* its start (field 22, after boot in clock ticks) */
        field = strchr(field, ' ');
        if (field == NULL) return 1;
        field++;
    }
    char *end;
    unsigned long long ticks = strtoull(field, &end, 10);
    long hz = sysconf(_SC_CLK_TCK);
    struct timespec real, boot;
    if (end == field || hz <= 0 || clock_gettime(CLOCK_REALTIME, &real) != 0 || clock_gettime(CLOCK_BOOTTIME, &boot) != 0)
        return 1;
    double since_boot = (double)(written->tv_sec - real.tv_sec + boot.tv_sec) + (double)(written->tv_nsec - real.tv_nsec + boot.tv_nsec) / 1e9;
    return (double)ticks / (double)hz > since_boot + 2.0; /* (execclient.START_SLACK_S) */
}

static int exec_sock = -1;

static void pass_on(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (exec_sock >= 0) (void)send(exec_sock, &b, 1, MSG_NOSIGNAL);
    errno = saved;
}

/* Python prints the reply (a person's rendering, text Python writes its own way) */
static void python_prints(int argc, char **argv, const unsigned char *reply, size_t n, int json_mode) {
    int fd = (int)syscall(SYS_memfd_create, "avfs-reply", 0);
    if (fd < 0 || write_all(fd, reply, (long)n) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
        fputs("avfs: cannot hand the daemon's answer on\n", stderr);
        _exit(70);
    }
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", fd);
    char **args = calloc((size_t)argc + 8, sizeof(char *));
    if (args == NULL) _exit(70);
    int k = 0;
    args[k++] = AVFS_PYTHON;
    args[k++] = "-S";
    args[k++] = "-c";
    /* as execclient.fast and client.main answer: print_reply, or the envelope of what it raised */
    args[k++] = "import sys\nsys.path[0:1] = []\nsys.argv[0] = " AVFS_SELF_REPR "\nsys.path.append(" AVFS_ROOT_REPR ")\n"
                "import marshal, posix\nfrom avfs_git.cli.execclient import print_reply\n"
                "fd, json_mode, args = int(sys.argv[1]), sys.argv[2] == '1', sys.argv[3:]\nchunks = []\n"
                "while True:\n    b = posix.read(fd, 1 << 20)\n    if not b:\n        break\n    chunks.append(b)\n"
                "try:\n    reply = marshal.loads(b''.join(chunks))\n"
                "    again = isinstance(reply, dict) and reply.get('fallback')\n"
                "    code = 0 if again else print_reply(json_mode, reply)\n"
                "except BrokenPipeError:\n    code = int(reply['code'])\n"
                "except Exception as exc:\n    from avfs_git.cli.execopts import after_remote\n"
                "    sys.exit(after_remote(args, exc))\n"
                "if again:\n    sys.argv[1:] = args\n    from avfs_git.cli.client import main\n    sys.exit(main())\n"
                "for s in (sys.stdout, sys.stderr):\n    try:\n        s.flush()\n    except (OSError, ValueError):\n        pass\n"
                "posix._exit(code)\n";
    args[k++] = fdarg;
    args[k++] = json_mode ? "1" : "0";
    for (int i = 1; i < argc; i++) args[k++] = argv[i];
    args[k] = NULL;
    execv(AVFS_PYTHON, args);
    fprintf(stderr, "avfs: cannot run %s: %s\n", AVFS_PYTHON, strerror(errno));
    _exit(127);
}

/* the fork named by --vault or AVFS_VAULT (execclient.fork_of); 0 when none */
static int fork_of(const char *spec, char *vault, size_t vsize, char *fork, size_t fsize) {
    if (spec == NULL) return 0;
    const char *colon = strchr(spec, ':');
    if (colon == NULL || colon == spec || !colon[1] || strchr(colon + 1, '@') != NULL) return 0;
    size_t vlen = (size_t)(colon - spec);
    if (memchr(spec, '/', vlen) != NULL || spec[0] == '.' || vlen >= vsize || strlen(colon + 1) >= fsize) return 0;
    memcpy(vault, spec, vlen);
    vault[vlen] = 0;
    strcpy(fork, colon + 1);
    return 1;
}

/* `proxy exec` through the fork's daemon; returns only when this program does not take
 * the call (Python then does all of it again) */
static void proxy_exec(int argc, char **argv, int rest, const char *given) {
    const char *spec = getenv("AVFS_VAULT");
    int json_mode = 0;
    for (int i = 1; i < rest; i++) {
        if (strcmp(argv[i], "--json") == 0) json_mode = 1;
        else if (strcmp(argv[i], "--vault") == 0 && i + 1 < rest) spec = argv[++i];
        else if (strcmp(argv[i], "--home") == 0 && i + 1 < rest) i++;
        else if (strncmp(argv[i], "--vault=", 8) == 0) spec = argv[i] + 8;
    }
    char vault[1024], fork[1024], home[4096], path[8192], data[8192];
    if (!fork_of(spec, vault, sizeof vault, fork, sizeof fork) || !text_ok(vault) || !text_ok(fork)) return;
    if (home_dir(given, home, sizeof home) != 0) return;
    char name[3072], *q = name;
    for (const char *c = fork; *c; c++) {
        if (*c == '%') q += sprintf(q, "%%25");
        else if (*c == '/') q += sprintf(q, "%%2F");
        else *q++ = *c;
    }
    *q = 0;
    if ((size_t)snprintf(path, sizeof path, "%s/vaults/%s.git/avfs/mounts/%s.exec", home, vault, name) >= sizeof path) return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) return;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return;
    }
    ssize_t n = 0, got;
    while ((size_t)n < sizeof data - 1 && ((got = read(fd, data + n, sizeof data - 1 - (size_t)n)) > 0 || (got < 0 && errno == EINTR)))
        if (got > 0) n += got;
    close(fd);
    /* none, longer than any this reads whole, or a NUL (a name the kernel reads past):
     * Python reads it its own way */
    if (n <= 0 || (size_t)n >= sizeof data - 1 || memchr(data, 0, (size_t)n) != NULL) return;
    data[n] = 0;
    char *nl1 = strchr(data, '\n');
    if (nl1 == NULL || nl1 == data) return;
    *nl1 = 0;
    char *pid_s = nl1 + 1, *nl2 = strchr(pid_s, '\n');
    char *mountpoint = nl2 != NULL ? nl2 + 1 : pid_s + strlen(pid_s);
    if (nl2 != NULL) *nl2 = 0;
    if (!*pid_s || strspn(pid_s, "0123456789") != strlen(pid_s) || !ascii(data)) return;
    long daemon_pid = strtol(pid_s, NULL, 10);
    size_t mlen = strlen(mountpoint);
    if (mlen > 0 && mountpoint[mlen - 1] == '\n') mountpoint[--mlen] = 0;

    /* the arguments after "proxy exec", with --cwd where the caller stands in the mount */
    int nargs = argc - rest - 2, has_cwd = 0;
    char **args = argv + rest + 2;
    for (int i = 0; i < nargs && strcmp(args[i], "--") != 0; i++)
        if (strcmp(args[i], "--cwd") == 0 || strncmp(args[i], "--cwd=", 6) == 0) has_cwd = 1;
    int stdin_fd = 0;
    for (int i = 0; i < nargs && strcmp(args[i], "--") != 0; i++)
        if (strcmp(args[i], "--stdin") == 0) stdin_fd = 1;
    for (int i = 0; i < nargs; i++)
        if (!text_ok(args[i])) return;
    char here[4096], *cwd_arg = NULL;
    if (*mountpoint && !has_cwd && getcwd(here, sizeof here) == NULL && errno == ERANGE)
        return; /* deeper than this reads: Python sends it (the command runs there) */
    if (*mountpoint && !has_cwd && getcwd(here, sizeof here) != NULL) {
        if (!text_ok(here)) return; /* Python sends it decoded its own way */
        size_t ml = strlen(mountpoint);
        while (ml > 1 && mountpoint[ml - 1] == '/') ml--;
        if (ml == 1 && mountpoint[0] == '/') ml = 0;
        if (strncmp(here, mountpoint, ml) == 0 && here[ml] == '/' && here[ml + 1]) cwd_arg = here + ml + 1;
    }

    buf_t req = {0}, msg = {0};
    int err = put(&req, "{", 1) || put_str(&req, "v") || put(&req, "i", 1) || put_u32(&req, 2);
    err = err || put_str(&req, "args") || put(&req, "[", 1) || put_u32(&req, (uint32_t)(nargs + (cwd_arg ? 2 : 0)));
    if (cwd_arg) err = err || put_str(&req, "--cwd") || put_str(&req, cwd_arg);
    for (int i = 0; i < nargs && !err; i++) err = put_str(&req, args[i]);
    err = err || put_str(&req, "json") || put(&req, json_mode ? "T" : "F", 1);
    err = err || put_str(&req, "env") || put(&req, "{", 1);
    names_t seen;
    if (err || names_init(&seen) != 0) return;
    for (int i = 0; environ[i] != NULL && !err; i++) {
        const char *eq = strchr(environ[i], '=');
        if (eq == NULL) continue;
        size_t klen = (size_t)(eq - environ[i]);
        if (env_seen(&seen, environ[i], klen)) continue;
        if (!text_ok(environ[i])) return; /* Python decodes it with surrogateescape */
        err = put_sized(&req, 'u', environ[i], klen) || put_str(&req, eq + 1);
    }
    err = err || put(&req, "0", 1) || put(&req, "0", 1);
    char head[9];
    snprintf(head, sizeof head, "%08lu", (unsigned long)req.len);
    if (err || req.len > 99999999 || put(&msg, head, 8) || put(&msg, req.p, req.len)) return;

    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t nlen = strlen(data);
    if (sock < 0 || nlen + 1 > sizeof addr.sun_path) return;
    memcpy(addr.sun_path + 1, data, nlen); /* an abstract name */
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + nlen);
    struct ucred cred;
    socklen_t clen = sizeof cred;
    /* an abstract name has no permissions: talk only to the daemon the exec file names,
     * running as us, started before it wrote the file (not a process given a dead
     * daemon's pid since), and not while it is ending */
    if (connect(sock, (struct sockaddr *)&addr, alen) != 0 || getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 ||
        cred.uid != getuid() || cred.pid != daemon_pid || dying(cred.pid, &st.st_mtim)) {
        close(sock);
        return;
    }
    int fd0 = 0;
    if (send_with_fds(sock, &msg, &fd0, stdin_fd ? 1 : 0) != 0) { /* not delivered whole: nobody ran it */
        close(sock);
        return;
    }

    exec_sock = sock;
    struct sigaction sa = {.sa_handler = pass_on};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    buf_t in = {0};
    size_t want = 8;
    int answered = 0;
    for (;;) {
        if (in.len >= 8 && want == 8) {
            char digits[9];
            memcpy(digits, in.p, 8);
            digits[8] = 0;
            long len = len8(digits);
            if (len <= 0) break; /* not a length, or an empty message: no answer (as Python's) */
            want = 8 + (size_t)len;
        }
        if (want > 8 && in.len >= want) {
            answered = 1;
            break;
        }
        char chunk[65536];
        ssize_t got = recv(sock, chunk, sizeof chunk, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0 || put(&in, chunk, (size_t)got) != 0) break; /* reset: it may have run */
    }
    close(sock);
    exec_sock = -1;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    if (!answered) { /* the daemon took the request and ended: Python says so */
        run_python(argc, argv,
                   "import sys\nsys.path[0:1] = []\nsys.argv[0] = " AVFS_SELF_REPR "\nsys.path.append(" AVFS_ROOT_REPR ")\n"
                   "from avfs_git.cli.execclient import NoAnswer\nfrom avfs_git.cli.execopts import after_remote\n"
                   "sys.exit(after_remote(sys.argv[1:], NoAnswer()))\n");
    }
    reply_t rep;
    const unsigned char *body = (const unsigned char *)in.p + 8;
    if (parse_reply(body, want - 8, &rep) == 0 && rep.fallback) return; /* Python runs it */
    if (parse_reply(body, want - 8, &rep) != 0 || !rep.has_code || !plain_text(&rep.out) ||
        !(rep.err.type == 'N' || rep.err.type == 0 || plain_text(&rep.err)))
        python_prints(argc, argv, body, want - 8, json_mode);
    signal(SIGPIPE, SIG_IGN); /* a reader gone: the write fails, the command's code stands (as Python's) */
    if (write_all(1, rep.out.s, rep.out.n) != 0 && errno != EPIPE) {
        /* as Python's print would: the code stands */
    }
    if (rep.err.type == 's') (void)write_all(2, rep.err.s, rep.err.n);
    _exit((int)rep.code);
}

int main(int argc, char **argv) {
    const char *given = NULL, *server = getenv("AVFS_SERVER");
    if (getenv("PYTHONPATH") != NULL) run_python(argc, argv, NULL); /* the avfs there runs */
    int r = rest_at(argc, argv, &given);
    if (r + 1 < argc && strcmp(argv[r], "proxy") == 0 && strcmp(argv[r + 1], "exec") == 0) {
        proxy_exec(argc, argv, r, given); /* a mount's daemon, with or without a server */
        run_python(argc, argv, NULL);
    }
    if ((server != NULL && strcmp(server, "off") == 0) || (r < argc && strcmp(argv[r], "hook") == 0))
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
    /* the request carries the environment (its secrets) and this process's stdio: only to
     * a server of this user (a --home another user can write, a socket planted there) */
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 || cred.uid != getuid()) {
        close(sock);
        run_python(argc, argv, NULL);
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
    if (send_with_fds(sock, &msg, fds, 3) != 0) {
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
    if (got == 0 || (got == 1 && first.has_fallback && !first.has_started && !first.has_code)) {
        close(sock);
        run_python(argc, argv, NULL); /* nothing ran: run it there */
    }
    if (got != 1 || (!first.has_started && !first.has_code)) {
        /* a length that is none, an answer cut short or that does not parse: whether the
         * command started is not known, and running it again could run it twice */
        fputs("avfs: the warm server's answer was not understood; the call may have run (AVFS_SERVER=off runs "
              "without it)\n",
              stderr);
        return 70;
    }
    if (!first.has_started) return (int)first.code;

    relay_sock = sock;
    relay_pidfd = first.started > 0 ? (int)syscall(SYS_pidfd_open, (pid_t)first.started, 0) : -1;
    struct sigaction rs = {.sa_handler = relay};
    sigemptyset(&rs.sa_mask);
    sigaction(SIGINT, &rs, NULL);
    sigaction(SIGTERM, &rs, NULL);
    sigaction(SIGHUP, &rs, NULL);
    /* a Ctrl-C that came with "started" (read in the same recv) or before the relay was in
     * place is the command's: it was lost, and the call waited for a command nobody had
     * interrupted (the twenty-fourth round, flaky1) */
    if (interrupted) relay(SIGINT);
    answer_t done;
    got = next_answer(sock, &in, &done, 0);
    if (got != 1 || !done.has_code) {
        fputs("avfs: the warm server went away while the command ran (AVFS_SERVER=off runs without it)\n", stderr);
        return 70;
    }
    return (int)done.code;
}
