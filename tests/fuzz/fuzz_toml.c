/* toml_parse on arbitrary bytes (configuration files, classification
 * rules).  Properties: a refusal is INVALID_TOML with a "FILE:LINE:COLUMN:"
 * message; an accepted document is a tree whose strings are NUL-terminated
 * UTF-8, whose positions are 1-based and within the document, whose tables
 * hold each key once (toml_table_get finds every member), and whose type
 * names are known. */
#include "error.h"
#include "fuzz.h"
#include "str.h"
#include "toml.h"

static int doc_lines;

static void walk(const struct toml_value *v, int depth)
{
  FUZZ_ASSERT(depth <= 130, "nested %d deep", depth);
  FUZZ_ASSERT(v->line >= 1 && v->col >= 1 && v->line <= doc_lines, "position %d:%d", v->line,
              v->col);
  FUZZ_ASSERT(strcmp(toml_type_name(v->type), "unknown") != 0, "type %d", (int)v->type);
  switch (v->type) {
  case TOML_STRING:
  case TOML_DATETIME:
  case TOML_DATETIME_LOCAL:
  case TOML_DATE_LOCAL:
  case TOML_TIME_LOCAL:
    FUZZ_ASSERT(v->u.str.ptr != NULL && v->u.str.ptr[v->u.str.len] == '\0', "unterminated");
    FUZZ_ASSERT(str_is_utf8(v->u.str.ptr, v->u.str.len), "string is not UTF-8");
    break;
  case TOML_ARRAY:
    for (size_t i = 0; i < v->u.arr.len; i++)
      walk(v->u.arr.items[i], depth + 1);
    break;
  case TOML_TABLE:
    for (size_t i = 0; i < v->u.tab.len; i++) {
      const struct toml_kv *kv = &v->u.tab.items[i];
      FUZZ_ASSERT(kv->key[kv->keylen] == '\0', "key unterminated");
      FUZZ_ASSERT(str_is_utf8(kv->key, kv->keylen), "key is not UTF-8");
      if (strlen(kv->key) == kv->keylen)
        FUZZ_ASSERT(toml_table_get(v, kv->key) == kv->value, "key '%s' twice, or not found",
                    kv->key);
      walk(kv->value, depth + 1);
    }
    break;
  default:
    break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = fuzz_copy(data, size);
  doc_lines = 1;
  for (size_t i = 0; i < size; i++)
    doc_lines += text[i] == '\n';
  struct sp_error *err = NULL;
  struct toml_value *doc = toml_parse(text, size, "fuzz.toml", &err);
  if (doc == NULL) {
    FUZZ_ASSERT(err != NULL, "no document and no error");
    FUZZ_ASSERT(strcmp(err->code, "INVALID_TOML") == 0, "code %s", err->code);
    int line = 0, col = 0;
    FUZZ_ASSERT(sscanf(err->msg, "fuzz.toml:%d:%d:", &line, &col) == 2 && line >= 1 &&
                    col >= 1 && line <= doc_lines,
                "message %s", err->msg);
    sp_error_free(err);
  } else {
    FUZZ_ASSERT(err == NULL, "a document and an error");
    FUZZ_ASSERT(doc->type == TOML_TABLE, "the root is a %s", toml_type_name(doc->type));
    walk(doc, 0);
    toml_free(doc);
  }
  free(text);
  return 0;
}
