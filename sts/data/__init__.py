"""Data files: reading and checking tables of sentence pairs (CSV, TSV, JSONL and the STS-B, SICK,
MSRP layouts), writing outputs atomically, and the plain-text tables commands print."""
