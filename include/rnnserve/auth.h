/* auth.h - bearer secrets: the API keys of the model routes and the admin token.
 *
 * Comparisons take time that depends on lengths only, so a guess learns nothing from timing. */
#ifndef RNNSERVE_AUTH_H
#define RNNSERVE_AUTH_H

#include <stddef.h>

/* Whether AUTHORIZATION (an Authorization header's value, or NULL) is "Bearer TOKEN" with TOKEN
 * one of SECRETS[0..n). Every secret is compared, whatever matched. */
int auth_bearer_ok(const char *authorization, const char *const *secrets, size_t n);

#endif
