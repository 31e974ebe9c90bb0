/* Links against an installed weft: spawn, join, yield through the public
   header only. Exits 0 when the task ran and returned its argument. */
#include <weft.h>

static void *child(void *arg)
{
	weft_yield();
	return arg;
}

static void *main_task(void *arg)
{
	void *r = NULL;
	weft_task *t = weft_spawn(child, arg);
	if (!t || weft_join(t, &r) != 0)
		return NULL;
	return r;
}

int main(void)
{
	void *r = NULL;
	int rc = weft_run(main_task, (void *)42, NULL, &r);
	return rc == 0 && r == (void *)42 ? 0 : 1;
}
