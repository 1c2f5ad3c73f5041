/* The pending event: the block being assembled until it is emitted or
 * dropped. */
#include "classify_int.h"

void cl_pending_reset(struct pending *p)
{
  free(p->message);
  free(p->file);
  struct sbuf raw = p->raw, held = p->held, last = p->last;
  sbuf_reset(&raw);
  sbuf_reset(&held);
  sbuf_reset(&last);
  memset(p, 0, sizeof *p);
  p->raw = raw;
  p->held = held;
  p->last = last;
  p->rank = RANK_NONE;
}

static void raw_add(struct pending *p, const char *s, size_t n)
{
  if (p->raw_lines >= CLASSIFY_RAW_MAX_LINES || p->raw.len + 1 >= CLASSIFY_RAW_MAX_BYTES)
    return;
  if (p->raw_lines > 0)
    sbuf_addch(&p->raw, '\n');
  cl_add_utf8(&p->raw, s, SP_MIN(n, CLASSIFY_RAW_MAX_BYTES));
  p->raw_lines++;
  if (p->raw.len > CLASSIFY_RAW_MAX_BYTES) {
    /* Cut what sanitising made too long, on a character boundary. */
    size_t k = CLASSIFY_RAW_MAX_BYTES;
    while (k > 0 && ((unsigned char)p->raw.buf[k] & 0xc0) == 0x80)
      k--;
    p->raw.len = k;
    p->raw.buf[k] = '\0';
  }
}

/* Append a line of the block (after any blank lines held back). */
void cl_block_add(struct pending *p, const char *s, size_t n, int64_t now)
{
  if (p->held.len > 0) {
    raw_add(p, p->held.buf, p->held.len);
    sbuf_reset(&p->held);
    p->lines++;
  }
  for (; p->blanks > 0; p->blanks--)
    raw_add(p, "", 0);
  raw_add(p, s, n);
  sbuf_reset(&p->last);
  if (n <= 512)
    sbuf_add(&p->last, s, n);
  p->lines++;
  p->last_ms = now;
}

void cl_block_start(struct pending *p, const char *s, size_t n, int64_t now,
                    enum block state)
{
  cl_pending_reset(p);
  p->state = state;
  cl_block_add(p, s, n, now);
}

/* The event takes the rule's classification; locations known from earlier
 * lines of the block stay unless the match names its own. */
void cl_adopt(struct pending *p, const struct match *m)
{
  bool keep = p->classified && p->generic && p->keep_tool;
  bool restart = (p->classified && p->restart) || m->restart; /* sticky */
  p->classified = true;
  p->rule = m->rule;
  if (!keep) {
    p->tool = m->tool;
    p->keep_tool = m->keep_tool;
    /* Node prints a throw-site header before an uncaught error, Bun a code
     * frame: a "node" error after a code frame is Bun's. */
    if (p->bun_frame && strcmp(p->tool, "node") == 0)
      p->tool = "bun";
  }
  p->category = m->category;
  p->severity = m->severity;
  p->generic = m->generic;
  p->restart = restart;
  free(p->message);
  p->message = cl_dup_utf8(m->msg, m->msg_len);
  if (m->file)
    cl_set_location(p, m->file, m->file_len, m->line, m->column, RANK_CAPTURE, true);
}

/* The same error reported twice in a row (a bare message, then the same
 * message with its context): one event.  Only a block of one line can be
 * echoed, so an echo is merged once. */
bool cl_echo(const struct pending *p, const struct match *m)
{
  if (p->lines > 1 || p->rank != RANK_NONE)
    return false;
  if (strcmp(p->tool, m->tool) != 0 || strcmp(p->category, m->category) != 0)
    return false;
  size_t a = strlen(p->message);
  if (a == 0 || m->msg_len == 0)
    return false;
  return memmem(m->msg, m->msg_len, p->message, a) != NULL ||
         memmem(p->message, a, m->msg, m->msg_len) != NULL;
}

void cl_emit(struct classifier *c, classify_cb cb, void *ud)
{
  struct pending *p = &c->p;
  if (p->state != BLOCK_NONE && p->classified && cb) {
    /* The same message in two files is two errors to fix; the same one at
     * another line of one file (after an edit) is still one. */
    cleanup_free char *keyed =
        p->file ? xasprintf("%s: %s", p->file, p->message) : xstrdup(p->message);
    cleanup_free char *norm = classify_normalise(keyed, strlen(keyed));
    struct classify_event ev = {
        .rule = p->rule,
        .tool = p->tool,
        .category = p->category,
        .severity = p->severity,
        .file = p->file,
        .line = p->file ? p->line : 0,
        .column = p->file ? p->column : 0,
        .message = p->message,
        .raw = sbuf_str(&p->raw),
        .hash = classify_hash(p->tool, p->category, norm),
        .restart = p->restart,
    };
    cb(ud, &ev);
  }
  cl_pending_reset(p);
}
