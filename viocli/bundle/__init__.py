"""The support bundle of ``viocli deployment getlogs``: collection, redaction and packing of logs and configs."""
