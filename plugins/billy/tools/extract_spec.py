"""Extract Billy's resource tables (the API reference page) into spec/billy-resources.json.

Run once by hand: python tools/extract_spec.py SNAPSHOT.md ledgerlink_billy/spec/billy-resources.json
The snapshot is the Markdown copy of https://www.billy.dk/api/ described in spec/SOURCE.md.
"""

from __future__ import annotations

import json
import re
import sys


def extract(text: str) -> dict[str, dict[str, object]]:
    resources: dict[str, dict[str, object]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^### `/v2/(\w+)`", line)
        if heading:
            current = heading.group(1)
            resources[current] = {"supports": "", "properties": {}}
            continue
        if current is None:
            continue
        if line.startswith("Supports:"):
            resources[current]["supports"] = line.split(":", 1)[1].strip()
            continue
        row = re.match(r"^\| `(\w+)` \| ([\w-]+) \| (.*) \| (.*) \|$", line)
        if row:
            name, kind, description, notes = row.groups()
            notes = notes.strip()
            props = resources[current]["properties"]
            assert isinstance(props, dict)
            default = re.search(r"default: (`[^`]*`)", notes)
            props[name] = {
                "type": kind,
                "required": "required" in notes,
                "readonly": "readonly" in notes,
                "immutable": "immutable" in notes,
                "default": default.group(1).strip("`") if default else None,
                "description": description.replace("\\-", "").strip(),
            }
    return resources


if __name__ == "__main__":
    source, target = sys.argv[1], sys.argv[2]
    with open(source, encoding="utf-8") as fh:
        data = extract(fh.read())
    with open(target, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
