/* playground.h - the playground page (web/playground.html), compiled into the binary.
 *
 * The Makefile turns the HTML file into C (tools/embed.sh) at build time, so `rnnserve` serves
 * the page with nothing to install beside it. The server only hands these bytes out. */
#ifndef RNNSERVE_PLAYGROUND_H
#define RNNSERVE_PLAYGROUND_H

#include <stddef.h>

/* The page, UTF-8, followed by a NUL that playground_html_len does not count. */
extern const unsigned char playground_html[];
extern const size_t playground_html_len;

#endif
