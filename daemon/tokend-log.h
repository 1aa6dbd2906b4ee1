/* SPDX-License-Identifier: MIT */
/* tokend's log: to the journal with structured fields when started by
 * systemd (JOURNAL_STREAM set), else one line per message on stderr.
 * Thread-safe; never pass secrets. */
#pragma once

#include <syslog.h>

#include "macro.h"

/* Decide the sink once at start-up; verbose enables LOG_DEBUG. */
void log_setup(int verbose);

/* Log one message. Control, bidi and invalid UTF-8 characters in the
 * formatted message are escaped (str_escape_controls()), so it may quote
 * caller-supplied text. Extra structured fields (journal only) come as
 * "KEY=value" strings in fields, terminated by NULL; may be NULL; they are
 * not escaped and must be tokend's own text. */
void log_fields(int prio, const char *const *fields, const char *fmt, ...) _printf_(3, 4);

#define log_debug(...) log_fields(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_fields(LOG_INFO, NULL, __VA_ARGS__)
#define log_notice(...) log_fields(LOG_NOTICE, NULL, __VA_ARGS__)
#define log_warning(...) log_fields(LOG_WARNING, NULL, __VA_ARGS__)
#define log_error(...) log_fields(LOG_ERR, NULL, __VA_ARGS__)
