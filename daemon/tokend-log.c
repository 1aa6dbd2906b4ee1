/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-journal.h>
#include <sys/uio.h>

#include "str-escape.h"
#include "tokend-log.h"

/* Set once in log_setup() before any thread starts, read-only after. */
static atomic_int log_journal;
static atomic_int log_max_prio = LOG_INFO;

void log_setup(int verbose) {
        atomic_store(&log_journal, getenv("JOURNAL_STREAM") != NULL);
        atomic_store(&log_max_prio, verbose ? LOG_DEBUG : LOG_INFO);
}

void log_fields(int prio, const char *const *fields, const char *fmt, ...) {
        static const char *const names[] = { "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug" };
        char raw[1024], msg[2048];
        va_list ap;

        if (prio > atomic_load(&log_max_prio))
                return;
        va_start(ap, fmt);
        (void) vsnprintf(raw, sizeof raw, fmt, ap);
        va_end(ap);
        /* Messages quote caller-supplied text (an HTTP method, a user name,
         * a D-Bus member): a newline would forge a line, ESC or U+009B drive
         * the terminal of whoever reads the log. */
        (void) str_escape_controls(raw, strlen(raw), msg, sizeof msg);

        if (atomic_load(&log_journal)) {
                struct iovec iov[16];
                char m[sizeof msg + 16], p[16];
                size_t n = 0;
                snprintf(m, sizeof m, "MESSAGE=%s", msg);
                snprintf(p, sizeof p, "PRIORITY=%d", prio);
                iov[n++] = (struct iovec){ m, strlen(m) };
                iov[n++] = (struct iovec){ p, strlen(p) };
                iov[n++] = (struct iovec){ (char *) "SYSLOG_IDENTIFIER=tokend", strlen("SYSLOG_IDENTIFIER=tokend") };
                for (size_t i = 0; fields && fields[i] && n < ELEMENTSOF(iov); i++)
                        iov[n++] = (struct iovec){ (char *) fields[i], strlen(fields[i]) };
                if (sd_journal_sendv(iov, (int) n) >= 0)
                        return;
        }
        /* One fprintf per line keeps lines from different threads whole. */
        if (fields && fields[0]) {
                char extra[512] = "";
                size_t o = 0;
                for (size_t i = 0; fields[i] && o < sizeof extra - 2; i++)
                        o += (size_t) snprintf(extra + o, sizeof extra - o, " %s", fields[i]);
                fprintf(stderr, "tokend: %s: %s [%s ]\n", names[prio & 7], msg, extra);
        } else
                fprintf(stderr, "tokend: %s: %s\n", names[prio & 7], msg);
}
