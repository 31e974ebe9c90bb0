/*
 * Runs a fuzz target without libFuzzer: every file of the corpus
 * directories given, then ITERATIONS inputs mutated from them (bit flips,
 * byte insertions and deletions, splices of two entries, repeats), from a
 * fixed seed, so a failure reproduces. What CTest runs under ASan and
 * UBSan; `make fuzz` builds the libFuzzer binary for longer runs.
 *
 *   replay ITERATIONS DIR...
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
	uint8_t *data;
	size_t size;
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static struct input read_file(const char *path)
{
	struct input in = {0};
	FILE *f = fopen(path, "rb");
	if (!f)
		return in;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	in.data = malloc(n > 0 ? (size_t)n : 1);
	in.size = in.data && n > 0 ? fread(in.data, 1, (size_t)n, f) : 0;
	fclose(f);
	return in;
}

/* One mutation of a (into a buffer of its own). */
static struct input mutate(const struct input *a, const struct input *b)
{
	size_t cap = a->size * 2 + b->size + 64;
	struct input m = {malloc(cap), a->size};
	memcpy(m.data, a->data, a->size);
	int rounds = 1 + (int)(next() % 4);
	for (int r = 0; r < rounds; r++) {
		size_t at = m.size ? next() % m.size : 0;
		switch (next() % 6) {
		case 0: /* flip a bit */
			if (m.size)
				m.data[at] ^= (uint8_t)(1u << (next() % 8));
			break;
		case 1: /* an interesting byte */
			if (m.size)
				m.data[at] =
				        (uint8_t) "\r\n*$-0123456789\"' \\x\0\xff"[next() % 22];
			break;
		case 2: /* insert a byte */
			if (m.size < cap - 1) {
				memmove(m.data + at + 1, m.data + at, m.size - at);
				m.data[at] = (uint8_t)next();
				m.size++;
			}
			break;
		case 3: /* delete a run */
			if (m.size) {
				size_t n = 1 + next() % (m.size - at);
				memmove(m.data + at, m.data + at + n, m.size - at - n);
				m.size -= n;
			}
			break;
		case 4: { /* splice in part of b */
			size_t n = b->size ? next() % b->size : 0;
			if (m.size + n < cap) {
				memmove(m.data + at + n, m.data + at, m.size - at);
				memcpy(m.data + at, b->data, n);
				m.size += n;
			}
			break;
		}
		case 5: /* repeat a run */
			if (m.size && m.size * 2 < cap) {
				size_t n = 1 + next() % (m.size - at);
				memmove(m.data + at + n, m.data + at, m.size - at);
				m.size += n;
			}
			break;
		}
	}
	return m;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s ITERATIONS DIR...\n", argv[0]);
		return 2;
	}
	long iterations = atol(argv[1]);
	struct input corpus[256];
	size_t n = 0;
	for (int d = 2; d < argc; d++) {
		DIR *dir = opendir(argv[d]);
		if (!dir) {
			perror(argv[d]);
			return 1;
		}
		struct dirent *e;
		while ((e = readdir(dir)) && n < 256) {
			if (e->d_name[0] == '.')
				continue;
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", argv[d], e->d_name);
			corpus[n] = read_file(path);
			if (corpus[n].data) {
				LLVMFuzzerTestOneInput(corpus[n].data, corpus[n].size);
				n++;
			}
		}
		closedir(dir);
	}
	if (n == 0) {
		fprintf(stderr, "replay: empty corpus\n");
		return 1;
	}
	for (long i = 0; i < iterations; i++) {
		struct input m = mutate(&corpus[next() % n], &corpus[next() % n]);
		LLVMFuzzerTestOneInput(m.data, m.size);
		free(m.data);
	}
	printf("replay: %zu corpus entries, %ld mutated inputs\n", n, iterations);
	for (size_t i = 0; i < n; i++)
		free(corpus[i].data);
	return 0;
}
