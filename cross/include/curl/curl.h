/* Empty stand-in for <curl/curl.h>, on the include path of the cross builds only (cross/build.sh).
 *
 * librdkafka 2.12 is built without curl (rdkafka-sys passes WITH_CURL=0), yet rdkafka_conf.c includes this
 * header under `#ifdef WITH_OAUTHBEARER_OIDC`, which config.h always defines (to 0). Nothing from it is used.
 * The host build finds Debian's libcurl4-openssl-dev header instead; the cross compilers (and musl-gcc) do not
 * search /usr/include/x86_64-linux-gnu, and that header is the host's anyway. */
#ifndef LINEGATE_CROSS_CURL_STUB_H
#define LINEGATE_CROSS_CURL_STUB_H
#endif
