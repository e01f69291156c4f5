/*
 * rivet-agent: runs a job's commands inside its container, on request.
 *
 * The runner starts one agent per job container with
 *     podman exec -i CTR /.rivet-agent
 * so the agent has exactly what a `podman exec` command has: the container's
 * namespaces, cgroup, seccomp profile, capabilities, no-new-privileges and user.
 * Each command the runner asks for is forked from here, which costs a fork and an
 * exec instead of a whole `podman exec` (CLI start-up, conmon, runc).
 *
 * Protocol (src/rivet/engine/agent/protocol.py mirrors every constant below; a
 * unit test compares them): frames on stdin (runner -> agent) and stdout
 * (agent -> runner), each a 12-byte header
 *     u32 length | u8 type | u8 stream | u16 reserved (0) | u32 request id
 * (big-endian) and `length` bytes of payload. The runner speaks first (HELLO
 * with the protocol version); anything unexpected from the runner makes the agent
 * report FATAL and exit. stderr carries diagnostics only.
 *
 * Per command: its own session and process group (setsid), stdin /dev/null,
 * stdout and stderr on two pipes read only while the runner has granted credit
 * (a flooding command blocks instead of growing anyone's memory), environment and
 * working directory from the request (never from a command line), and KILL sends
 * SIGKILL to the whole process group. The command's leader is not reaped before
 * its EXIT is sent (waitid WNOWAIT), so its pid, and with it the process group id,
 * cannot be reused while a KILL may still name it. When the leader exits, what is
 * already in its pipes is forwarded (at most a pipe's capacity) and the streams
 * are closed, as `podman exec` does: a background process that keeps a pipe open
 * does not hold the command's result back.
 *
 * The agent makes itself non-dumpable, so that processes of the job (same user,
 * no CAP_SYS_PTRACE) cannot open its pipes or read its memory through /proc.
 * All its descriptors are close-on-exec; a command inherits none of them.
 *
 * Built static (the container may have no libc): see rivet/engine/agent/build.py.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define AGENT_VERSION 1
#define AGENT_MAGIC "RIVETAGT"
#define MAGIC_SIZE 8
#define HEADER_SIZE 12
#define MAX_REQUEST_FRAME (4u << 20)
#define MAX_DATA 65536u
#define MAX_MESSAGE 1024u
#define MAX_COMMANDS 256
#define MAX_WINDOW (1u << 20)

/* runner -> agent */
#define T_HELLO 1
#define T_START 2
#define T_CREDIT 3
#define T_KILL 4
#define T_PING 5
/* agent -> runner */
#define T_READY 64
#define T_DATA 65
#define T_EOF 66
#define T_EXIT 67
#define T_ERROR 68
#define T_PONG 69
#define T_FATAL 70

#define STREAM_STDOUT 1
#define STREAM_STDERR 2

#define EXIT_NORMAL 0
#define EXIT_SIGNAL 1

#define AGENT_ID_VAR "RIVET_AGENT_ID="
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEFAULT_PIPE_SIZE 65536

struct command {
    int used;
    uint32_t id;
    pid_t pid;
    int fd[3];            /* [STREAM_STDOUT], [STREAM_STDERR]; -1 once closed */
    uint32_t credit[3];   /* bytes the runner will still accept */
    size_t drain_left[3]; /* once the leader exited: bytes still forwarded */
    int exited;           /* seen by waitid(WNOWAIT); reaped when reported */
    int kind;
    int value;
};

static struct command commands[MAX_COMMANDS];
static char **base_env;
static size_t base_envc;
static int helloed;
static int sigfd = -1;
static unsigned char *inbuf;
static size_t inlen, incap;
static unsigned char outbuf[HEADER_SIZE + MAX_DATA];

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void kill_all(void) {
    for (int i = 0; i < MAX_COMMANDS; i++) {
        if (commands[i].used) {
            kill(-commands[i].pid, SIGKILL);
            kill(commands[i].pid, SIGKILL);
        }
    }
}

/* The runner is gone (or unusable): nothing may outlive it. */
static void quit(int code) {
    kill_all();
    _exit(code);
}

static void write_all(const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            quit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

/* One frame; the payload may already be in place at outbuf + HEADER_SIZE. */
static void send_frame(int type, int stream, uint32_t id, const void *payload, uint32_t len) {
    if (len > MAX_DATA)
        len = MAX_DATA;
    if (len > 0 && payload != outbuf + HEADER_SIZE)
        memmove(outbuf + HEADER_SIZE, payload, len);
    put_u32(outbuf, len);
    outbuf[4] = (unsigned char)type;
    outbuf[5] = (unsigned char)stream;
    outbuf[6] = 0;
    outbuf[7] = 0;
    put_u32(outbuf + 8, id);
    write_all(outbuf, HEADER_SIZE + (size_t)len);
}

__attribute__((format(printf, 3, 4))) static void send_message(int type, uint32_t id,
                                                               const char *fmt, ...) {
    char text[MAX_MESSAGE];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof text)
        n = (int)sizeof text - 1;
    send_frame(type, 0, id, text, (uint32_t)n);
}

/* A runner that breaks the protocol gets one FATAL frame, then the agent ends: its
 * commands first, then itself once the runner hung up, or after FATAL_LINGER_MS at
 * most. (podman exec may drop what a process writes right before it exits, so
 * exiting at once could lose the frame that says why.) */
#define FATAL_LINGER_MS 2000
static void fatal(const char *what) {
    send_message(T_FATAL, 0, "rivet-agent: %s", what);
    fprintf(stderr, "rivet-agent: %s\n", what);
    kill_all();
    unsigned char sink[4096];
    for (int waited = 0; waited < FATAL_LINGER_MS; waited += 100) {
        struct pollfd in = {.fd = 0, .events = POLLIN};
        int ready = poll(&in, 1, 100);
        if (ready < 0 && errno != EINTR)
            break;
        if (ready > 0 && read(0, sink, sizeof sink) <= 0)
            break; /* the runner hung up (or the pipe failed) */
    }
    _exit(2);
}

static struct command *find(uint32_t id) {
    for (int i = 0; i < MAX_COMMANDS; i++)
        if (commands[i].used && commands[i].id == id)
            return &commands[i];
    return NULL;
}

/* ---------------------------------------------------------------- the child */

__attribute__((format(printf, 2, 3))) static void child_fail(int code, const char *fmt, ...) {
    char text[MAX_MESSAGE];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    if (n > 0) {
        if ((size_t)n >= sizeof text)
            n = (int)sizeof text - 1;
        if (write(2, text, (size_t)n) < 0) {
            /* nothing left to tell it to */
        }
    }
    _exit(code);
}

static const char *env_value(char **envp, const char *name) {
    size_t n = strlen(name);
    for (; *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

/* execvp's search, but with the PATH of the command's own environment. */
static void exec_search(char **argv, char **envp) {
    const char *file = argv[0];
    if (strchr(file, '/') != NULL) {
        execve(file, argv, envp);
        int err = errno;
        child_fail(err == ENOENT || err == ENOTDIR ? 127 : 126, "rivet-agent: exec: \"%s\": %s\n",
                   file, strerror(err));
    }
    const char *path = env_value(envp, "PATH");
    if (path == NULL)
        path = DEFAULT_PATH;
    size_t flen = strlen(file);
    int denied = 0;
    char candidate[4096];
    for (const char *dir = path;; dir++) {
        const char *end = strchrnul(dir, ':');
        size_t dlen = (size_t)(end - dir);
        if (dlen + 1 + flen + 1 <= sizeof candidate) {
            if (dlen > 0) {
                memcpy(candidate, dir, dlen);
                candidate[dlen] = '/';
                memcpy(candidate + dlen + 1, file, flen + 1);
            } else {
                memcpy(candidate, file, flen + 1); /* empty entry: current directory */
            }
            execve(candidate, argv, envp);
            int err = errno;
            if (err == EACCES) {
                denied = 1;
            } else if (err != ENOENT && err != ENOTDIR && err != ESTALE && err != ENODEV &&
                       err != ETIMEDOUT && err != ENAMETOOLONG) {
                child_fail(126, "rivet-agent: exec: \"%s\": %s\n", file, strerror(err));
            }
        }
        if (*end == '\0')
            break;
        dir = end;
    }
    if (denied)
        child_fail(126, "rivet-agent: exec: \"%s\": %s\n", file, strerror(EACCES));
    child_fail(127, "rivet-agent: exec: \"%s\": executable file not found in $PATH\n", file);
}

static void run_child(const char *cwd, char **argv, char **envp, int out, int err) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) == 0) {
            close(p[1]);
            null = p[0];
        }
    }
    if (null >= 0)
        dup2(null, 0);
    else
        close(0);
    dup2(out, 1);
    dup2(err, 2);
    if (chdir(cwd) != 0) {
        int e = errno;
        child_fail(e == ENOENT || e == ENOTDIR ? 127 : 126,
                   "rivet-agent: chdir to cwd (\"%s\") failed: %s\n", cwd, strerror(e));
    }
    exec_search(argv, envp);
}

/* ------------------------------------------------------------ the requests */

static int env_name_eq(const char *a, const char *b) {
    while (*a && *a != '=' && *a == *b) {
        a++;
        b++;
    }
    return *a == '=' && *b == '=';
}

static void start_command(uint32_t id, const unsigned char *p, uint32_t len) {
    if (len < 13 || p[len - 1] != '\0')
        fatal("malformed START request");
    uint32_t window = get_u32(p), argc = get_u32(p + 4), envc = get_u32(p + 8);
    if (window == 0 || window > MAX_WINDOW || argc == 0 || argc > len || envc > len)
        fatal("malformed START request (counts)");
    uint32_t strings = 0;
    for (uint32_t i = 12; i < len; i++)
        if (p[i] == '\0')
            strings++;
    if (strings != 1 + argc + envc)
        fatal("malformed START request (strings)");
    if (find(id) != NULL)
        fatal("START with a request id already in use");
    struct command *c = NULL;
    for (int i = 0; i < MAX_COMMANDS; i++)
        if (!commands[i].used) {
            c = &commands[i];
            break;
        }
    if (c == NULL) {
        send_message(T_ERROR, id, "rivet-agent: too many commands at once (%d)", MAX_COMMANDS);
        return;
    }

    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    char **envp = calloc((size_t)envc + base_envc + 1, sizeof *envp);
    if (argv == NULL || envp == NULL) {
        free(argv);
        free(envp);
        send_message(T_ERROR, id, "rivet-agent: cannot start the command: out of memory");
        return;
    }
    const char *s = (const char *)p + 12;
    const char *cwd = s;
    s += strlen(s) + 1;
    for (uint32_t i = 0; i < argc; i++) {
        argv[i] = (char *)s;
        s += strlen(s) + 1;
    }
    size_t n = 0;
    for (uint32_t i = 0; i < envc; i++) {
        if (strchr(s, '=') == NULL || s[0] == '=')
            fatal("malformed START request (environment entry)");
        envp[n++] = (char *)s;
        s += strlen(s) + 1;
    }
    /* The container's own environment, under what the request sets. */
    for (size_t b = 0; b < base_envc; b++) {
        int overridden = 0;
        for (uint32_t i = 0; i < envc && !overridden; i++)
            overridden = env_name_eq(base_env[b], envp[i]);
        if (!overridden)
            envp[n++] = base_env[b];
    }

    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        send_message(T_ERROR, id, "rivet-agent: cannot start the command: pipe: %s",
                     strerror(errno));
        goto done;
    }
    if (pipe2(err, O_CLOEXEC) != 0) {
        int e = errno;
        close(out[0]);
        close(out[1]);
        send_message(T_ERROR, id, "rivet-agent: cannot start the command: pipe: %s", strerror(e));
        goto done;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(out[0]);
        close(out[1]);
        close(err[0]);
        close(err[1]);
        send_message(T_ERROR, id, "rivet-agent: cannot start the command: fork: %s", strerror(e));
        goto done;
    }
    if (pid == 0)
        run_child(cwd, argv, envp, out[1], err[1]);
    close(out[1]);
    close(err[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    memset(c, 0, sizeof *c);
    c->used = 1;
    c->id = id;
    c->pid = pid;
    c->fd[0] = -1;
    c->fd[STREAM_STDOUT] = out[0];
    c->fd[STREAM_STDERR] = err[0];
    c->credit[STREAM_STDOUT] = window;
    c->credit[STREAM_STDERR] = window;
done:
    free(argv);
    free(envp);
}

static void close_stream(struct command *c, int s) {
    if (c->fd[s] >= 0) {
        close(c->fd[s]);
        c->fd[s] = -1;
        send_frame(T_EOF, s, c->id, NULL, 0);
    }
}

static void finish_if_done(struct command *c) {
    if (!c->used || !c->exited || c->fd[STREAM_STDOUT] >= 0 || c->fd[STREAM_STDERR] >= 0)
        return;
    int status;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {
    }
    unsigned char payload[8] = {0};
    payload[0] = (unsigned char)c->kind;
    put_u32(payload + 4, (uint32_t)c->value);
    send_frame(T_EXIT, 0, c->id, payload, sizeof payload);
    c->used = 0;
}

/* Forward one read of stream s; returns the bytes read, 0 at its end, -1 when empty. */
static ssize_t forward(struct command *c, int s, size_t limit) {
    size_t want = c->credit[s];
    if (want > MAX_DATA)
        want = MAX_DATA;
    if (want > limit)
        want = limit;
    ssize_t n;
    do {
        n = read(c->fd[s], outbuf + HEADER_SIZE, want);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        c->credit[s] -= (uint32_t)n;
        send_frame(T_DATA, s, c->id, outbuf + HEADER_SIZE, (uint32_t)n);
        return n;
    }
    if (n == 0 || errno != EAGAIN) {
        close_stream(c, s);
        return 0;
    }
    return -1;
}

/* After the leader's exit: what is in the pipe now, then the end of the stream. */
static void drain(struct command *c, int s) {
    while (c->fd[s] >= 0 && c->credit[s] > 0) {
        if (c->drain_left[s] == 0) {
            close_stream(c, s);
            break;
        }
        ssize_t n = forward(c, s, c->drain_left[s]);
        if (n > 0)
            c->drain_left[s] -= (size_t)n;
        else if (n < 0)
            close_stream(c, s);
    }
    finish_if_done(c);
}

static void reap_exited(void) {
    struct signalfd_siginfo si;
    while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
    }
    for (int i = 0; i < MAX_COMMANDS; i++) {
        struct command *c = &commands[i];
        if (!c->used || c->exited)
            continue;
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_PID, (id_t)c->pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
            info.si_pid != c->pid)
            continue;
        c->exited = 1;
        c->kind = info.si_code == CLD_EXITED ? EXIT_NORMAL : EXIT_SIGNAL;
        c->value = info.si_status;
        for (int s = STREAM_STDOUT; s <= STREAM_STDERR; s++) {
            int size = c->fd[s] >= 0 ? fcntl(c->fd[s], F_GETPIPE_SZ) : 0;
            c->drain_left[s] = size > 0 ? (size_t)size : DEFAULT_PIPE_SIZE;
            drain(c, s);
        }
        finish_if_done(c);
    }
}

static void handle(int type, int stream, uint32_t id, const unsigned char *p, uint32_t len) {
    if (!helloed && type != T_HELLO)
        fatal("the first request must be HELLO");
    switch (type) {
    case T_HELLO: {
        if (helloed || len != MAGIC_SIZE + 4 || memcmp(p, AGENT_MAGIC, MAGIC_SIZE) != 0)
            fatal("malformed HELLO");
        uint32_t version = get_u32(p + MAGIC_SIZE);
        if (version != AGENT_VERSION) {
            char what[96];
            snprintf(what, sizeof what, "the runner speaks protocol %u, this agent %u", version,
                     (unsigned)AGENT_VERSION);
            fatal(what);
        }
        helloed = 1;
        unsigned char ready[MAGIC_SIZE + 20];
        memcpy(ready, AGENT_MAGIC, MAGIC_SIZE);
        put_u32(ready + MAGIC_SIZE, AGENT_VERSION);
        put_u32(ready + MAGIC_SIZE + 4, (uint32_t)getpid());
        put_u32(ready + MAGIC_SIZE + 8, MAX_COMMANDS);
        put_u32(ready + MAGIC_SIZE + 12, MAX_REQUEST_FRAME);
        put_u32(ready + MAGIC_SIZE + 16, MAX_DATA);
        send_frame(T_READY, 0, 0, ready, sizeof ready);
        return;
    }
    case T_START:
        start_command(id, p, len);
        return;
    case T_CREDIT: {
        if (len != 4 || (stream != STREAM_STDOUT && stream != STREAM_STDERR))
            fatal("malformed CREDIT");
        struct command *c = find(id);
        if (c == NULL || c->fd[stream] < 0)
            return; /* finished meanwhile */
        uint32_t more = get_u32(p);
        if (more > MAX_WINDOW || c->credit[stream] + more > MAX_WINDOW)
            fatal("CREDIT beyond the largest window");
        c->credit[stream] += more;
        if (c->exited)
            drain(c, stream);
        return;
    }
    case T_KILL: {
        if (len != 0)
            fatal("malformed KILL");
        struct command *c = find(id);
        if (c != NULL) { /* unreaped until reported, so the group id is still its own */
            kill(-c->pid, SIGKILL);
            kill(c->pid, SIGKILL);
        }
        return;
    }
    case T_PING:
        if (len != 0)
            fatal("malformed PING");
        send_frame(T_PONG, 0, id, NULL, 0);
        return;
    default:
        fatal("unknown request type");
    }
}

static void read_requests(void) {
    if (incap - inlen < 65536) {
        size_t want = incap * 2;
        if (want < inlen + 65536)
            want = inlen + 65536;
        unsigned char *bigger = realloc(inbuf, want);
        if (bigger == NULL)
            fatal("out of memory");
        inbuf = bigger;
        incap = want;
    }
    ssize_t n = read(0, inbuf + inlen, incap - inlen);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0)
        quit(n == 0 ? 0 : 1); /* the runner closed the pipe: end every command */
    inlen += (size_t)n;
    size_t at = 0;
    while (inlen - at >= HEADER_SIZE) {
        const unsigned char *h = inbuf + at;
        uint32_t len = get_u32(h);
        if (len > MAX_REQUEST_FRAME)
            fatal("request frame too large");
        if (h[6] != 0 || h[7] != 0)
            fatal("reserved header bytes are not zero");
        if (inlen - at < HEADER_SIZE + (size_t)len)
            break;
        handle(h[4], h[5], get_u32(h + 8), h + HEADER_SIZE, len);
        at += HEADER_SIZE + (size_t)len;
    }
    memmove(inbuf, inbuf + at, inlen - at);
    inlen -= at;
}

static void copy_environment(void) {
    extern char **environ;
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    base_env = calloc(n + 1, sizeof *base_env);
    if (base_env == NULL)
        _exit(2);
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], AGENT_ID_VAR, strlen(AGENT_ID_VAR)) != 0)
            base_env[base_envc++] = environ[i];
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("rivet-agent protocol %d\n", AGENT_VERSION);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s (started by the Rivet runner; speaks on stdin/stdout)\n",
                argv[0]);
        return 2;
    }
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0) {
        perror("rivet-agent: signalfd");
        return 2;
    }
    for (int fd = 0; fd <= 2; fd++)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (chdir("/") != 0) {
        /* the cwd of each command is set per request anyway */
    }
    copy_environment();

    struct pollfd fds[2 + 2 * MAX_COMMANDS];
    struct command *owner[2 + 2 * MAX_COMMANDS];
    int which[2 + 2 * MAX_COMMANDS];
    for (;;) {
        int n = 0;
        fds[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
        for (int i = 0; i < MAX_COMMANDS; i++) {
            struct command *c = &commands[i];
            if (!c->used || c->exited)
                continue;
            for (int s = STREAM_STDOUT; s <= STREAM_STDERR; s++) {
                if (c->fd[s] >= 0 && c->credit[s] > 0) {
                    owner[n] = c;
                    which[n] = s;
                    fds[n++] = (struct pollfd){.fd = c->fd[s], .events = POLLIN};
                }
            }
        }
        if (poll(fds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            fatal("poll failed");
        }
        for (int i = 2; i < n; i++) {
            struct command *c = owner[i];
            int s = which[i];
            if (fds[i].revents != 0 && c->used && !c->exited && c->fd[s] == fds[i].fd)
                forward(c, s, MAX_DATA);
        }
        if (fds[1].revents != 0)
            reap_exited();
        if (fds[0].revents != 0)
            read_requests();
    }
}
