/* auth.c - bearer secrets: parsing "Authorization: Bearer TOKEN" and comparing it with the
 * configured API keys or admin token in time that reveals neither which secret nor how much. */
#include "rnnserve/auth.h"

#include <string.h>
#include <strings.h>

/* Compares in time that depends only on the lengths, so that response timing does not reveal
 * how much of a secret a guess got right. */
static int secret_eq(const char *given, size_t glen, const char *want)
{
    size_t wlen = strlen(want);
    unsigned char diff = glen != wlen;
    for (size_t i = 0; i < glen; i++)
        diff |= (unsigned char)given[i] ^ (unsigned char)want[i < wlen ? i : 0];
    return diff == 0;
}

/* The token of a "Bearer TOKEN" header value, or NULL. */
static const char *bearer(const char *h, size_t *len)
{
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    *len = strlen(h);
    while (*len && h[*len - 1] == ' ')
        (*len)--;
    return *len ? h : NULL;
}

int auth_bearer_ok(const char *authorization, const char *const *secrets, size_t n)
{
    size_t len = 0;
    const char *tok = bearer(authorization, &len);
    int ok = 0;
    for (size_t i = 0; tok && i < n; i++)
        ok |= secret_eq(tok, len, secrets[i]);
    return ok;
}
