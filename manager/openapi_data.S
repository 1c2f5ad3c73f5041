/* docs/openapi.json, served at /v1/openapi.json. */
  .section .rodata
  .global sandpit_openapi_json
sandpit_openapi_json:
  .incbin "docs/openapi.json"
  .byte 0
  .section .note.GNU-stack,"",@progbits
