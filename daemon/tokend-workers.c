/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "macro.h"
#include "tokend-workers.h"

typedef struct job {
        worker_fn fn;
        void *data;
} job;

struct workers {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        job *queue;  /* ring buffer */
        size_t cap, head, len;
        bool stopping;
        unsigned n;
        pthread_t *threads;
};

static void *worker_main(void *arg) {
        workers *w = arg;
        for (;;) {
                pthread_mutex_lock(&w->lock);
                while (w->len == 0 && !w->stopping)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (w->len == 0) { /* stopping and drained */
                        pthread_mutex_unlock(&w->lock);
                        return NULL;
                }
                job j = w->queue[w->head];
                w->head = (w->head + 1) % w->cap;
                w->len--;
                pthread_mutex_unlock(&w->lock);
                j.fn(j.data);
        }
}

int workers_new(unsigned n, size_t max_queue, workers **ret) {
        workers *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->cap = max_queue ? max_queue : 1;
        w->queue = calloc(w->cap, sizeof *w->queue);
        w->threads = calloc(n ? n : 1, sizeof *w->threads);
        if (!w->queue || !w->threads) {
                free(w->queue);
                free(w->threads);
                free(w);
                return -ENOMEM;
        }
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        for (w->n = 0; w->n < (n ? n : 1); w->n++)
                if (pthread_create(&w->threads[w->n], NULL, worker_main, w) != 0) {
                        workers_free(w);
                        return -EAGAIN;
                }
        *ret = w;
        return 0;
}

int workers_submit(workers *w, worker_fn fn, void *data) {
        int r = 0;
        pthread_mutex_lock(&w->lock);
        if (w->stopping)
                r = -ESHUTDOWN;
        else if (w->len == w->cap)
                r = -EAGAIN;
        else {
                w->queue[(w->head + w->len) % w->cap] = (job){ fn, data };
                w->len++;
                pthread_cond_signal(&w->cond);
        }
        pthread_mutex_unlock(&w->lock);
        return r;
}

void workers_free(workers *w) {
        if (!w)
                return;
        pthread_mutex_lock(&w->lock);
        w->stopping = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        for (unsigned i = 0; i < w->n; i++)
                pthread_join(w->threads[i], NULL);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w->threads);
        free(w->queue);
        free(w);
}
