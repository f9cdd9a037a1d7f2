/*
 * hello-buildctl: example service for buildctl products.
 *
 * Logs a heartbeat line to stdout (the journal, under systemd) every
 * --interval seconds, naming the Mender artifact the device runs, so an
 * over-the-air update is visible in `journalctl -u hello-buildctl`.
 * --once prints one line and exits (used by tests). SIGTERM/SIGINT stop it
 * cleanly with exit status 0.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef HELLO_VERSION
#define HELLO_VERSION "1.0"
#endif

#define DEFAULT_ARTIFACT_INFO "/etc/mender/artifact_info"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* Reads "artifact_name=<value>" from the Mender artifact_info file. */
static void read_artifact_name(const char *path, char *out, size_t len)
{
	static const char key[] = "artifact_name=";
	char line[256];
	FILE *f;

	snprintf(out, len, "unknown");
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, sizeof(key) - 1) == 0) {
			line[strcspn(line, "\r\n")] = '\0';
			snprintf(out, len, "%s", line + sizeof(key) - 1);
			break;
		}
	}
	fclose(f);
}

static void usage(FILE *to)
{
	fprintf(to, "usage: hello-buildctl [--interval SECONDS] [--once] "
		    "[--artifact-info PATH] [--version]\n");
}

int main(int argc, char **argv)
{
	const char *info_path = DEFAULT_ARTIFACT_INFO;
	unsigned long interval = 60;
	unsigned long beats = 0;
	int once = 0;
	char artifact[256];
	struct sigaction sa;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--once") == 0) {
			once = 1;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("hello-buildctl %s\n", HELLO_VERSION);
			return 0;
		} else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
			char *end;
			errno = 0;
			interval = strtoul(argv[++i], &end, 10);
			if (errno || *end != '\0' || interval == 0) {
				fprintf(stderr, "hello-buildctl: --interval needs a positive number, got '%s'\n",
					argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--artifact-info") == 0 && i + 1 < argc) {
			info_path = argv[++i];
		} else {
			usage(stderr);
			return 2;
		}
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	read_artifact_name(info_path, artifact, sizeof(artifact));
	printf("hello-buildctl %s started, artifact %s\n", HELLO_VERSION, artifact);
	fflush(stdout);
	if (once)
		return 0;

	while (!stop_requested) {
		unsigned int left = (unsigned int)interval;
		while (left > 0 && !stop_requested)
			left = sleep(left);
		if (stop_requested)
			break;
		read_artifact_name(info_path, artifact, sizeof(artifact));
		printf("hello-buildctl: alive, beat %lu, artifact %s\n", ++beats, artifact);
		fflush(stdout);
	}
	printf("hello-buildctl: stopping\n");
	return 0;
}
