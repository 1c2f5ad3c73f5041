/* Pino's JSON log lines: the errors inside structured logs. */
#include "classify_int.h"

static const char *json_str(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* A pino (or similar) JSON log line at level warn or above: an event of its
 * own.  Returns false if the line is not such JSON. */
bool cl_pino_line(struct classifier *c, const char *s, size_t n, int64_t now,
                  classify_cb cb, void *ud, bool *handled)
{
  *handled = false;
  /* Most structured lines are info: read a numeric level without parsing. */
  const char *lv0 = memmem(s, n, "\"level\"", 7);
  if (lv0) {
    const char *q = cl_skip_ws(lv0 + 7, s + n);
    if (q < s + n && *q == ':') {
      q = cl_skip_ws(q + 1, s + n);
      int level = 0, digits = 0;
      while (q < s + n && is_digit((unsigned char)*q) && digits < 4) {
        level = level * 10 + (*q++ - '0');
        digits++;
      }
      if (digits > 0 && digits < 4 && level < 40 && q < s + n &&
          (*q == ',' || *q == '}' || is_space((unsigned char)*q))) {
        *handled = true;
        return true;
      }
    }
  }
  cleanup_json cJSON *j = cJSON_ParseWithLength(s, n);
  if (!cJSON_IsObject(j))
    return false;
  const cJSON *lv = cJSON_GetObjectItemCaseSensitive(j, "level");
  double level = -1;
  if (cJSON_IsNumber(lv)) {
    level = lv->valuedouble;
  } else if (cJSON_IsString(lv)) {
    const char *l = lv->valuestring;
    if (strcasecmp(l, "fatal") == 0 || strcasecmp(l, "critical") == 0)
      level = 60;
    else if (strcasecmp(l, "error") == 0)
      level = 50;
    else if (strcasecmp(l, "warn") == 0 || strcasecmp(l, "warning") == 0)
      level = 40;
    else
      level = 30;
  } else {
    return false;
  }
  *handled = true; /* a structured log line: never matched as text */
  if (level < 40)
    return true;
  const char *msg = json_str(j, "msg");
  if (msg == NULL)
    msg = json_str(j, "message");
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "err");
  if (!cJSON_IsObject(e))
    e = cJSON_GetObjectItemCaseSensitive(j, "error");
  const char *emsg = cJSON_IsObject(e) ? json_str(e, "message") : NULL;
  const char *stack = cJSON_IsObject(e) ? json_str(e, "stack") : NULL;
  if (emsg == NULL && cJSON_IsString(e))
    emsg = e->valuestring[0] ? e->valuestring : NULL;
  if (stack == NULL)
    stack = json_str(j, "stack"); /* older pino: the error's fields inline */

  struct pending *p = &c->p;
  cl_block_start(p, s, n, now, BLOCK_ERROR);
  p->classified = true;
  p->rule = "pino";
  p->tool = "pino";
  const char *names[] = {"tool", "framework", "name"};
  for (size_t i = 0; i < SP_ARRAY_SIZE(names); i++) {
    const char *t = json_str(j, names[i]);
    for (size_t k = 0; t && k < SP_ARRAY_SIZE(known_tools); k++)
      if (strcmp(t, known_tools[k]) == 0) {
        p->tool = known_tools[k];
        i = SP_ARRAY_SIZE(names);
        break;
      }
  }
  p->severity = level >= 50 ? "error" : "warning";
  p->category = level >= 50 ? "runtime" : "warning";
  p->restart = level >= 60;
  if (msg && emsg && strcmp(msg, emsg) != 0 && strstr(msg, emsg) == NULL) {
    char *both = xasprintf("%s: %s", msg, emsg);
    p->message = cl_dup_utf8(both, strlen(both));
    free(both);
  } else {
    const char *one = msg ? msg : emsg ? emsg : "";
    p->message = cl_dup_utf8(one, strlen(one));
  }
  /* The category from what the message says, if a rule recognises it. */
  if (level >= 50) {
    const char *texts[] = {emsg, msg};
    for (size_t i = 0; i < 2; i++) {
      struct match m;
      if (texts[i] && cl_classify_quoted(c, texts[i], strlen(texts[i]), &m)) {
        p->category = m.category;
        p->restart = p->restart || m.restart;
        if (m.file)
          cl_set_location(p, m.file, m.file_len, m.line, m.column, RANK_CAPTURE, false);
        break;
      }
    }
  }
  if (stack) {
    const char *q = stack;
    while (*q) {
      const char *nl = strchr(q, '\n');
      size_t ln = nl ? (size_t)(nl - q) : strlen(q);
      const char *f;
      size_t flen;
      int line, col;
      if (cl_line_shape(q, ln, false, &f, &flen, &line, &col) == SHAPE_FRAME)
        cl_frame_seen(p, f, flen, line, col);
      if (nl == NULL)
        break;
      q = nl + 1;
    }
  }
  cl_emit(c, cb, ud);
  return true;
}
