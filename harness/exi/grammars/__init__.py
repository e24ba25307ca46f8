"""Generated EXI grammar tables, one module per schema (see tools/gen_exi.py)."""
