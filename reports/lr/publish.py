"""Publish the LR table from the grid's run directories: the table the presets read
(``fcnprobe/data/lr_table.json``), its mirror here, and the records it came from
(``records.jsonl``, one lrgrid record per line, as the sweep wrote it).

    PYTHONPATH=. python reports/lr/publish.py "why the grid was reduced" runs/lr_a runs/lr_b runs/lr_c
"""
import json
import shutil
import sys
from pathlib import Path

from fcnprobe.lr import TABLE_PATH, write_lr_table
from fcnprobe.results import RunStore

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    note, dirs = sys.argv[1], sys.argv[2:]
    path = write_lr_table(dirs, out=TABLE_PATH, note=note)
    shutil.copy(path, HERE / "lr_table.json")
    records = [r for d in dirs for r in RunStore(d).read_records() if r.probe == "lrgrid"]
    lines = [json.dumps(r.to_dict(), sort_keys=True, default=str) for r in sorted(records, key=lambda r: r.cell_id)]
    (HERE / "records.jsonl").write_text("\n".join(lines) + "\n")
    print(f"{path} and {HERE / 'lr_table.json'}: {len(records)} records")
