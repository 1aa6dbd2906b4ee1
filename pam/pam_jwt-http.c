/* SPDX-License-Identifier: MIT */
/* A deliberately tiny HTTP/1.1 client (RFC 9112) for one request to tokend.
 * A general HTTP library would be too heavy inside sshd; this one knows a
 * single shape of exchange and rejects everything else. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pam_jwt-http.h"

/* Retry interval when a non-blocking AF_UNIX connect finds the listen
 * backlog full: Linux then returns EAGAIN and gives no completion event. */
#define CONNECT_RETRY_MS 10

void jwt_http_response_done(jwt_http_response *r) {
        if (!r)
                return;
        free(r->body);
        *r = (jwt_http_response) {};
}

static const char *find_crlf(const char *p, const char *end) {
        for (; p + 1 < end; p++)
                if (p[0] == '\r' && p[1] == '\n')
                        return p;
        return NULL;
}

/* RFC 9110 §5.6.2 tchar */
static bool is_tchar(char c) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
                return true;
        return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field values may hold VCHAR, obs-text, SP and HTAB; no CR, LF or NUL. */
static bool is_field_char(char c) {
        unsigned char u = (unsigned char) c;
        if (u == '\t')
                return true;
        return u >= 0x20U && u != 0x7fU;
}

static bool name_is(const char *name, size_t len, const char *want) {
        return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Status line: HTTP/1.x SP 3DIGIT SP reason-phrase (RFC 9112 §4). */
static int parse_status_line(const char *p, const char *end, unsigned *ret_status) {
        static const char prefix[] = "HTTP/1.";
        size_t n = (size_t) (end - p);

        if (n < sizeof(prefix) - 1 + 5 || memcmp(p, prefix, sizeof(prefix) - 1) != 0)
                return -EBADMSG;
        p += sizeof(prefix) - 1;
        if ((*p != '0' && *p != '1') || p[1] != ' ')
                return -EBADMSG;
        p += 2;
        if (end - p < 3)
                return -EBADMSG;
        unsigned status = 0;
        for (int i = 0; i < 3; i++, p++) {
                if (*p < '0' || *p > '9')
                        return -EBADMSG;
                status = status * 10U + (unsigned) (*p - '0');
        }
        if (status < 100U)
                return -EBADMSG;
        if (p < end && *p != ' ')
                return -EBADMSG;
        for (; p < end; p++)
                if (!is_field_char(*p))
                        return -EBADMSG;
        *ret_status = status;
        return 0;
}

/* Content-Length = 1*DIGIT (RFC 9110 §8.6), optional whitespace around it. */
static int parse_content_length(const char *v, const char *end, size_t *ret) {
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
        if (v == end)
                return -EBADMSG;
        size_t n = 0;
        for (; v < end; v++) {
                if (*v < '0' || *v > '9')
                        return -EBADMSG;
                n = n * 10U + (size_t) (*v - '0');
                if (n > JWT_HTTP_BODY_MAX)
                        return -EFBIG; /* also stops overflow */
        }
        *ret = n;
        return 0;
}

/* head: from the status line up to (excluding) the blank line's CRLF. */
static int parse_head(const char *head, const char *end, unsigned *ret_status, size_t *ret_length) {
        const char *eol = find_crlf(head, end + 2);
        unsigned status;
        size_t length = 0;
        bool have_length = false;
        int r;

        r = parse_status_line(head, eol, &status);
        if (r < 0)
                return r;

        for (const char *line = eol + 2; line < end; line = eol + 2) {
                eol = find_crlf(line, end + 2);
                const char *colon = memchr(line, ':', (size_t) (eol - line));
                /* RFC 9112 §5.1/§5.2: no whitespace before the colon, no obs-fold */
                if (!colon || colon == line)
                        return -EBADMSG;
                for (const char *c = line; c < colon; c++)
                        if (!is_tchar(*c))
                                return -EBADMSG;
                for (const char *c = colon + 1; c < eol; c++)
                        if (!is_field_char(*c))
                                return -EBADMSG;

                size_t name_len = (size_t) (colon - line);
                if (name_is(line, name_len, "Content-Length")) {
                        /* RFC 9112 §6.3: several lengths are a framing error */
                        if (have_length)
                                return -EBADMSG;
                        r = parse_content_length(colon + 1, eol, &length);
                        if (r < 0)
                                return r;
                        have_length = true;
                } else if (name_is(line, name_len, "Transfer-Encoding"))
                        /* we only read Content-Length framing; a chunked answer
                         * next to a length is the classic smuggling shape */
                        return -EBADMSG;
        }
        if (!have_length)
                return -EBADMSG;

        *ret_status = status;
        *ret_length = length;
        return 0;
}

int jwt_http_parse_response(const char *buf, size_t len, jwt_http_response *ret) {
        size_t scan = len < JWT_HTTP_HEAD_MAX ? len : JWT_HTTP_HEAD_MAX;
        const char *blank = NULL;
        unsigned status;
        size_t length;
        int r;

        /* the head must end with CRLF CRLF within the first JWT_HTTP_HEAD_MAX bytes */
        for (const char *p = buf; p + 3 < buf + scan; p++)
                if (memcmp(p, "\r\n\r\n", 4) == 0) {
                        blank = p;
                        break;
                }
        if (!blank)
                return len >= JWT_HTTP_HEAD_MAX ? -EBADMSG : -EAGAIN;
        if (memchr(buf, '\0', (size_t) (blank - buf)))
                return -EBADMSG;

        r = parse_head(buf, blank, &status, &length);
        if (r < 0)
                return r;

        size_t body_off = (size_t) (blank - buf) + 4;
        if (len - body_off < length)
                return -EAGAIN;
        if (len - body_off > length)
                return -EBADMSG;

        char *body = malloc(length + 1);
        if (!body)
                return -ENOMEM;
        memcpy(body, buf + body_off, length);
        body[length] = '\0';

        *ret = (jwt_http_response) { .status = status, .body = body, .body_len = length };
        return 0;
}

static int64_t now_ms(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
                return -ETIMEDOUT;
        return left > INT_MAX ? INT_MAX : (int) left;
}

/* Wait until fd is ready for events or the deadline passes. POLLERR/POLLHUP
 * count as ready: the next syscall reports what happened. */
static int wait_fd(int fd, short events, int64_t deadline) {
        for (;;) {
                int left = remaining_ms(deadline);
                if (left < 0)
                        return left;
                struct pollfd p = { .fd = fd, .events = events };
                int r = poll(&p, 1, left);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (r == 0)
                        return -ETIMEDOUT;
                return 0;
        }
}

/* After a failed non-blocking send/recv: 0 when it is worth retrying (EINTR,
 * or EAGAIN and fd became ready in time), else -errno or -ETIMEDOUT. */
static int retry_after(int fd, short events, int64_t deadline) {
        if (errno == EINTR)
                return 0;
        if (errno != EAGAIN)
                return -errno;
        return wait_fd(fd, events, deadline);
}

static int connect_unix(int fd, const char *socket_path, int64_t deadline) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t n = strlen(socket_path);

        if (n == 0 || n >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, socket_path, n);
        socklen_t sa_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + 1);

        for (;;) {
                if (connect(fd, (const struct sockaddr *) &sa, sa_len) >= 0)
                        return 0;
                if (errno == EAGAIN) {
                        int left = remaining_ms(deadline);
                        if (left < 0)
                                return left;
                        (void) poll(NULL, 0, left < CONNECT_RETRY_MS ? left : CONNECT_RETRY_MS);
                        continue;
                }
                if (errno != EINPROGRESS && errno != EINTR)
                        return -errno;

                /* the connection completes in the background */
                int r = wait_fd(fd, POLLOUT, deadline);
                if (r < 0)
                        return r;
                int err = 0;
                socklen_t len = sizeof(err);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        return -errno;
                return err > 0 ? -err : 0;
        }
}

static int send_all(int fd, struct iovec *iov, size_t n_iov, int64_t deadline) {
        while (n_iov > 0) {
                struct msghdr mh = { .msg_iov = iov, .msg_iovlen = n_iov };
                ssize_t k = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0) {
                        int r = retry_after(fd, POLLOUT, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                size_t done = (size_t) k;
                while (n_iov > 0 && done >= iov->iov_len) {
                        done -= iov->iov_len;
                        iov++;
                        n_iov--;
                }
                if (n_iov > 0) {
                        iov->iov_base = (char *) iov->iov_base + done;
                        iov->iov_len -= done;
                }
        }
        return 0;
}

static int read_response(int fd, int64_t deadline, jwt_http_response *ret) {
        const size_t cap = JWT_HTTP_HEAD_MAX + JWT_HTTP_BODY_MAX;
        _cleanup_(freep) char *buf = malloc(cap);
        size_t n = 0;

        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = recv(fd, buf + n, cap - n, MSG_DONTWAIT);
                if (k < 0) {
                        int r = retry_after(fd, POLLIN, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                n += (size_t) k;
                int r = jwt_http_parse_response(buf, n, ret);
                if (r != -EAGAIN)
                        return r;
                /* EOF before a complete answer, or a full buffer that still
                 * does not parse: the peer is not speaking our protocol */
                if (k == 0 || n == cap)
                        return -EBADMSG;
        }
}

int jwt_http_post_unix(const char *socket_path, const char *path, const char *body, size_t body_len,
                       int timeout_ms, jwt_http_response *ret) {
        int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
        _cleanup_(closep) int fd = -EBADF;
        char head[512];
        int r;

        r = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\n"
                     "Host: localhost\r\n"
                     "Content-Type: application/json\r\n"
                     "Accept: application/json\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: close\r\n"
                     "\r\n",
                     path, body_len);
        if (r < 0 || (size_t) r >= sizeof(head))
                return -EINVAL;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;

        r = connect_unix(fd, socket_path, deadline);
        if (r < 0)
                return r;

        struct iovec iov[2] = {
                { .iov_base = head, .iov_len = strlen(head) },
                { .iov_base = (void *) body, .iov_len = body_len },
        };
        r = send_all(fd, iov, body_len > 0 ? 2 : 1, deadline);
        if (r < 0)
                return r;

        return read_response(fd, deadline, ret);
}
