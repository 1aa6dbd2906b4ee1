/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "strv.h"
#include "tokend-hostnames.h"

static int add_name(char ***l, size_t *n, const char *name) {
        if (!name || !*name)
                return 0;
        for (size_t i = 0; i < *n; i++)
                if (strcasecmp((*l)[i], name) == 0)
                        return 0;
        char *s = strdup(name);
        if (!s)
                return -ENOMEM;
        for (char *p = s; *p; p++)
                *p = (char) tolower((unsigned char) *p);
        if (strv_push(l, n, s) < 0) {
                free(s);
                return -ENOMEM;
        }
        return 0;
}

int host_names_default(char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        char host[HOST_NAME_MAX + 1] = "";
        struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *ai = NULL;
        size_t n = 0;
        int r = 0;

        if (gethostname(host, sizeof host - 1) < 0)
                host[0] = 0;
        if ((r = add_name(&l, &n, host)) < 0)
                return r;
        if (host[0] && getaddrinfo(host, NULL, &hints, &ai) == 0) {
                r = add_name(&l, &n, ai->ai_canonname);
                freeaddrinfo(ai);
                if (r < 0)
                        return r;
        }
        if ((r = add_name(&l, &n, "localhost")) < 0 || (r = add_name(&l, &n, "127.0.0.1")) < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

bool host_audience_accepts(char *const *aud, size_t n, const char *service, char *const *names,
                           bool accept_unscoped) {
        size_t sl = strlen(service);
        for (size_t i = 0; i < n; i++) {
                if (strncmp(aud[i], service, sl) != 0)
                        continue;
                if (aud[i][sl] == 0 && accept_unscoped)
                        return true;
                if (aud[i][sl] != '@')
                        continue;
                for (char *const *h = names; h && *h; h++)
                        if (strcasecmp(aud[i] + sl + 1, *h) == 0)
                                return true;
        }
        return false;
}
