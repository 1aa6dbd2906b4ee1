/* SPDX-License-Identifier: MIT */
/* The subscribers of DeviceRevoked (see tokend-bus-watch.h). */
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "tokend-bus-watch.h"
#include "tokend-users.h"
#include "tokend.h"

#define BUS_PATH "/io/tokend/Tokend1"
#define BUS_IFACE "io.tokend.Tokend1"

typedef struct watcher {
        char *name; /* unique name (":1.42") */
        uid_t uid;
        char user[USER_NAME_MAX + 1];
} watcher;

struct bus_watchers {
        sd_bus *bus;
        sd_bus_track *track; /* the connected subscribers: the bus daemon's NameOwnerChanged keeps it current */
        watcher *v;
        size_t n;
};

int bus_watchers_new(sd_bus *bus, bus_watchers **ret) {
        bus_watchers *w = calloc(1, sizeof *w);
        int r;

        if (!w)
                return -ENOMEM;
        if ((r = sd_bus_track_new(bus, &w->track, NULL, NULL)) < 0) {
                free(w);
                return r;
        }
        w->bus = sd_bus_ref(bus);
        *ret = w;
        return 0;
}

void bus_watchers_free(bus_watchers *w) {
        if (!w)
                return;
        for (size_t i = 0; i < w->n; i++)
                free(w->v[i].name);
        free(w->v);
        sd_bus_track_unref(w->track);
        sd_bus_unref(w->bus);
        free(w);
}

/* Forget subscribers that left the bus (the track dropped their names). */
static void sweep(bus_watchers *w) {
        size_t k = 0;
        for (size_t i = 0; i < w->n; i++) {
                if (sd_bus_track_count_name(w->track, w->v[i].name) > 0)
                        w->v[k++] = w->v[i];
                else
                        free(w->v[i].name);
        }
        w->n = k;
}

int bus_watchers_add(bus_watchers *w, sd_bus_message *m, uid_t uid) {
        const char *sender = sd_bus_message_get_sender(m);
        size_t same_uid = 0;
        td_user u = { .name = "" };
        watcher *v;
        int r;

        if (!sender)
                return -EINVAL;
        sweep(w);
        for (size_t i = 0; i < w->n; i++) {
                if (streq(w->v[i].name, sender))
                        return 0;
                same_uid += w->v[i].uid == uid;
        }
        if (w->n >= BUS_WATCHERS_MAX || (uid != 0 && same_uid >= BUS_WATCHERS_PER_UID))
                return -EUSERS;
        if (!(v = realloc(w->v, (w->n + 1) * sizeof *v)))
                return -ENOMEM;
        w->v = v;
        (void) user_by_uid(uid, &u); /* no passwd entry: only an admin's copy can reach it */
        watcher x = { .uid = uid, .name = strdup(sender) };
        if (!x.name)
                return -ENOMEM;
        memcpy(x.user, u.name, sizeof x.user);
        if ((r = sd_bus_track_add_name(w->track, sender)) < 0) {
                free(x.name);
                return r;
        }
        w->v[w->n++] = x;
        return 0;
}

static int send_one(bus_watchers *w, const char *dest, const char *user, const char *device_id) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *s = NULL;
        int r = sd_bus_message_new_signal(w->bus, &s, BUS_PATH, BUS_IFACE, "DeviceRevoked");
        if (r >= 0)
                r = sd_bus_message_set_destination(s, dest);
        if (r >= 0)
                r = sd_bus_message_append(s, "ss", user, device_id);
        if (r >= 0)
                r = sd_bus_send(w->bus, s, NULL);
        return r;
}

int bus_watchers_emit(bus_watchers *w, tokend *t, const char *user, const char *device_id) {
        _cleanup_(freep) char *admin_group = NULL;
        int sent = 0, err = 0, r;

        sweep(w);
        if (w->n == 0)
                return 0;
        tokend_rdlock(t);
        admin_group = t->config->admin_group ? strdup(t->config->admin_group) : NULL;
        tokend_unlock(t);
        for (size_t i = 0; i < w->n; i++) {
                const watcher *x = &w->v[i];
                if (!streq(x->user, user) && !user_is_admin(x->uid, admin_group))
                        continue;
                if ((r = send_one(w, x->name, user, device_id)) < 0)
                        err = err ? err : r; /* the others still get theirs */
                else
                        sent++;
        }
        return err < 0 ? err : sent;
}
