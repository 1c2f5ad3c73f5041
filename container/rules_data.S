/* The default classification rules, built into the monitor. */
  .section .rodata
  .global sp_default_rules
  .global sp_default_rules_end
sp_default_rules:
  .incbin "container/rules/default.toml"
sp_default_rules_end:
  .byte 0
  .section .note.GNU-stack,"",@progbits
