#!/usr/bin/env python3
"""The Python a careful user would write instead of kml2csv: the benchmark's "good Python" peer.

lxml iterparse (streaming; each Placemark is cleared once done), the csv module, one process per
core. Writes one CSV per KML with every tuple of every <coordinates> and every gx:coord, in
document order, with the Placemark's name. No durability (no fsync), no validation.

Usage: peer_lxml.py [--jobs N] IN_DIR OUT_DIR
"""
import csv
import os
import sys
from concurrent.futures import ProcessPoolExecutor

from lxml import etree

KML = "{http://www.opengis.net/kml/2.2}"
GX = "{http://www.google.com/kml/ext/2.2}"
TAGS = (KML + "coordinates", GX + "coord", KML + "Placemark", KML + "name")


def convert(job):
    source, target = job
    rows = 0
    with open(target, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(("name", "longitude", "latitude", "altitude"))
        name = ""
        for event, element in etree.iterparse(source, events=("end",), tag=TAGS, huge_tree=True):
            tag = element.tag
            if tag == TAGS[0]:
                for text in (element.text or "").split():
                    values = text.split(",")
                    writer.writerow((name, values[0], values[1], values[2] if len(values) > 2 else ""))
                    rows += 1
                element.clear()
            elif tag == TAGS[1]:
                values = (element.text or "").split()
                writer.writerow((name, values[0], values[1], values[2] if len(values) > 2 else ""))
                rows += 1
                element.clear()
            elif tag == TAGS[3]:
                parent = element.getparent()
                if parent is not None and parent.tag == TAGS[2]:
                    name = element.text or ""
            else:
                name = ""
                element.clear()
                while element.getprevious() is not None:
                    del element.getparent()[0]
    return rows


def main():
    args = sys.argv[1:]
    jobs = 2
    if args[:1] == ["--jobs"]:
        jobs = int(args[1])
        args = args[2:]
    source, target = args
    os.makedirs(target, exist_ok=True)
    names = sorted(n for n in os.listdir(source) if n.endswith(".kml"))
    work = [(os.path.join(source, n), os.path.join(target, n[:-4] + ".csv")) for n in names]
    # Largest first, as kml2csv schedules, so that both peers get the same chance to balance.
    work.sort(key=lambda job: -os.path.getsize(job[0]))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        rows = sum(pool.map(convert, work, chunksize=max(1, len(work) // (jobs * 16))))
    print(f"{len(work)} files; {rows} rows", file=sys.stderr)


if __name__ == "__main__":
    main()
