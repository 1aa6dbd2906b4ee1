/* SPDX-License-Identifier: MIT */
/* A fixed pool of threads running blocking jobs (PAM password checks) off
 * the HTTP and D-Bus threads. The queue is bounded: a full queue is an
 * honest "busy" (503), not unbounded memory. */
#pragma once

#include <stddef.h>

typedef struct workers workers;
typedef void (*worker_fn)(void *data);

/* Start n threads with a queue of at most max_queue waiting jobs. Returns 0
 * and *ret (free with workers_free), -ENOMEM, or -EAGAIN (a thread could not
 * be started; none is left running). */
int workers_new(unsigned n, size_t max_queue, workers **ret);

/* Queue fn(data): on 0, fn runs exactly once on a worker thread and data is
 * fn's from then on; on failure data stays the caller's. Returns 0, -EAGAIN
 * (queue full), -ESHUTDOWN (stopping). */
int workers_submit(workers *w, worker_fn fn, void *data);

/* Run every queued job, join the threads, free. Accepts NULL. */
void workers_free(workers *w);
