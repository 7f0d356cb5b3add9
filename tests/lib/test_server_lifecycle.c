/*
 * test_server_lifecycle.c - the server as a library: herd_server_start / herd_server_stop,
 * twice in one process, on ephemeral ports, through include/herd.h only.
 *
 * Each round starts a server (port 0), checks that the calling thread's signal mask is
 * untouched (the program keeps its signals), answers GET /health, then opens a streaming
 * completion that cannot end by itself (end-of-generation ids banned, a step delay from
 * herd_server_options.test_step_ms) and stops the server while the stream is open: stop
 * must return, the stream must end cleanly (an error event naming the shutdown, then
 * "data: [DONE]"), and the port must be released. The first round runs a second server at
 * the same time. The model comes from HERD_TEST_MODEL (the model suite's tiny model); the
 * test skips (77) without it.
 */
#include "herd.h"
#include "check.h"

#include <arpa/inet.h>  /* htons, inet_pton */
#include <errno.h>
#include <netinet/in.h> /* sockaddr_in */
#include <signal.h>     /* pthread_sigmask */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>   /* SO_RCVTIMEO */
#include <unistd.h>

/* A connected socket to 127.0.0.1:port, or -1. Reads time out after 20 s so a hang fails. */
static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Appends what arrives to buf (NUL-terminated) until needle appears, EOF or a timeout. */
static size_t read_until(int fd, char *buf, size_t len, size_t cap, const char *needle)
{
    while (len + 1 < cap && (!needle || !strstr(buf, needle))) {
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
    }
    return len;
}

static void check_health(int port)
{
    int fd = dial(port);
    CHECK_MSG(fd >= 0, "connect to port %d", port);
    if (fd < 0)
        return;
    const char *req = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    CHECK(send(fd, req, strlen(req), 0) == (ssize_t)strlen(req));
    char buf[4096] = "";
    read_until(fd, buf, 0, sizeof buf, NULL);
    CHECK_MSG(strncmp(buf, "HTTP/1.1 200", 12) == 0, "GET /health: %.80s", buf);
    close(fd);
}

/* A streaming completion that only the shutdown can end; returns its socket after the first
 * event arrived (-1 on failure). */
static int open_stream(int port, const herd_model_info *in)
{
    char bias[256] = "";
    size_t k = 0;
    for (int i = 0; i < in->n_eos && k + 32 < sizeof bias; i++)
        k += (size_t)snprintf(bias + k, sizeof bias - k, "%s\"%d\": -100", i ? ", " : "",
                              in->eos_ids[i]);
    char body[512], req[1024];
    int nb = snprintf(body, sizeof body,
                      "{\"prompt\": \"hello\", \"max_tokens\": 200, \"temperature\": 0, "
                      "\"stream\": true, \"logit_bias\": {%s}}", bias);
    int nr = snprintf(req, sizeof req,
                      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      "application/json\r\nContent-Length: %d\r\n\r\n%s", nb, body);
    int fd = dial(port);
    if (fd < 0)
        return -1;
    if (send(fd, req, (size_t)nr, 0) != nr) {
        close(fd);
        return -1;
    }
    char buf[8192] = "";
    read_until(fd, buf, 0, sizeof buf, "data: ");
    CHECK_MSG(strstr(buf, "HTTP/1.1 200") && strstr(buf, "data: "), "stream start: %.200s",
              buf);
    return fd;
}

static int mask_has_sigint(void)
{
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    return sigismember(&now, SIGINT);
}

static herd_server *start(const herd_model *m)
{
    herd_server_options o = herd_server_default_options();
    o.port = 0;
    o.n_parallel = 1;
    o.n_ctx = 256;
    o.n_threads = 1;
    o.test_step_ms = 20; /* 200 tokens take 4 s: the stream is surely open at the stop */
    herd_server *s = NULL;
    herd_status st = herd_server_start(m, &o, &s);
    CHECK_MSG(st == HERD_OK && s, "herd_server_start: %s", herd_last_error());
    if (s) {
        const herd_server_info *in = herd_server_get_info(s);
        CHECK(in->port > 0 && in->n_ctx == 256 && in->n_parallel == 1);
        CHECK(in->kv_type == HERD_DTYPE_F16 && in->kv_bytes > 0);
    }
    return s;
}

int main(void)
{
    const char *path = getenv("HERD_TEST_MODEL");
    if (!path || access(path, R_OK) != 0) {
        printf("SKIP: HERD_TEST_MODEL (%s) is not there\n", path ? path : "unset");
        return 77;
    }
    herd_model_params mp = {.n_threads = 1};
    herd_model *m = NULL;
    if (herd_model_load(path, &mp, &m) != HERD_OK) {
        printf("FAIL: loading %s: %s\n", path, herd_last_error());
        return 1;
    }
    const herd_model_info *info = herd_model_get_info(m);
    int sigint_blocked = mask_has_sigint();
    int last_port = 0;
    for (int round = 0; round < 2; round++) {
        herd_server *s = start(m);
        if (!s)
            break;
        CHECK_MSG(mask_has_sigint() == sigint_blocked, "herd_server_start changed the mask");
        int port = herd_server_get_info(s)->port;
        herd_server *other = round == 0 ? start(m) : NULL;
        check_health(port);
        if (other) {
            CHECK(herd_server_get_info(other)->port != port);
            check_health(herd_server_get_info(other)->port);
        }
        int fd = open_stream(port, info);
        CHECK(fd >= 0);
        herd_server_stop(s); /* the stream is still open: it must end, not hang the stop */
        if (fd >= 0) {
            static char buf[1 << 16];
            buf[0] = '\0';
            size_t len = read_until(fd, buf, 0, sizeof buf, "data: [DONE]");
            CHECK_MSG(len > 0 && strstr(buf, "shutting down"), "no shutdown error event");
            CHECK_MSG(strstr(buf, "data: [DONE]") != NULL, "the stream did not end: %.300s",
                      len > 300 ? buf + len - 300 : buf);
            close(fd);
        }
        int again = dial(port);
        CHECK_MSG(again < 0 && errno == ECONNREFUSED, "port %d still accepts after stop", port);
        if (again >= 0)
            close(again);
        herd_server_stop(other);
        printf("round %d: port %d started, served, stopped mid-stream\n", round, port);
        last_port = port;
    }
    CHECK(last_port > 0);
    herd_server_stop(NULL);
    herd_model_free(m);
    return check_done();
}
