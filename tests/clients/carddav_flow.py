#!/usr/bin/env python3
"""CardDAV round trip with plain HTTP requests and HTTP Basic auth.

usage: carddav_flow.py URL USER PASSWORD COLLECTION_URL [--header NAME:VALUE]...

URL is the server root; COLLECTION_URL is the address book, absolute or a path
relative to URL (e.g. /alice/contacts/). If it does not exist it is created
with an extended MKCOL (RFC 5689) carrying the CardDAV resourcetype: Radicale
refuses a plain MKCOL under `owner_only`. Then a vCard is PUT with
`If-None-Match: *` (a second such PUT must get 412), found again with an
`addressbook-query` REPORT, fetched, and DELETEd with `If-Match`.
Prints one line per step; exits 0 on success, 1 with a FAIL line otherwise.
"""

import argparse
import sys
import uuid
from urllib.parse import urljoin, urlsplit

import xml.etree.ElementTree as ET

import niquests

from flowlib import fail, parse_headers, step

DAV = "DAV:"
CARD = "urn:ietf:params:xml:ns:carddav"

MKCOL_BODY = f"""<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="{DAV}" xmlns:CR="{CARD}">
  <D:set><D:prop>
    <D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
    <D:displayname>davgate test contacts</D:displayname>
  </D:prop></D:set>
</D:mkcol>
"""

RESOURCETYPE_BODY = """<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>
"""

QUERY_BODY = """<?xml version="1.0" encoding="utf-8"?>
<CR:addressbook-query xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:prop><D:getetag/><CR:address-data/></D:prop>
  <CR:filter>
    <CR:prop-filter name="UID">
      <CR:text-match collation="i;unicode-casemap" match-type="equals">{uid}</CR:text-match>
    </CR:prop-filter>
  </CR:filter>
</CR:addressbook-query>
"""


def expect(r, ok, what):
    if r.status_code not in ok:
        fail(f"{what}: expected {'/'.join(map(str, ok))}, got {r.status_code}: {r.text[:300]!r}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("user")
    ap.add_argument("password")
    ap.add_argument("collection_url")
    ap.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    args = ap.parse_args()

    s = niquests.Session()
    s.auth = (args.user, args.password)  # preemptive Basic, like DAVx5 after its first 401
    s.headers.update(parse_headers(args.header))
    root = args.url if args.url.endswith("/") else args.url + "/"
    coll = urljoin(root, args.collection_url)
    if not coll.endswith("/"):
        coll += "/"

    def req(method, url, **kw):
        return s.request(method, url, allow_redirects=False, timeout=30, **kw)

    # Informational only: what the root says about CardDAV discovery.
    r = req("PROPFIND", urljoin(root, "/.well-known/carddav"), headers={"Depth": "0"})
    step(f"well-known carddav: {r.status_code} {r.headers.get('Location', '')}".rstrip())

    r = req("PROPFIND", coll, data=RESOURCETYPE_BODY,
            headers={"Depth": "0", "Content-Type": "application/xml; charset=utf-8"})
    if r.status_code == 404:
        r = req("MKCOL", coll, data=MKCOL_BODY,
                headers={"Content-Type": "application/xml; charset=utf-8"})
        expect(r, (201,), f"MKCOL {coll}")
        step(f"mkcol addressbook: 201 {coll}")
    else:
        expect(r, (207,), f"PROPFIND {coll}")
        if ET.fromstring(r.content).find(f".//{{{DAV}}}resourcetype/{{{CARD}}}addressbook") is None:
            fail(f"{coll} exists but is not an address book")
        step(f"addressbook exists: {coll}")

    uid = f"davgate-{uuid.uuid4()}"
    card_url = urljoin(coll, f"{uid}.vcf")
    vcard = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\n"
        f"UID:{uid}\r\nFN:Dav Gate {uid[-6:]}\r\nN:Gate;Dav;;;\r\n"
        "EMAIL;TYPE=INTERNET:davgate@example.invalid\r\n"
        "END:VCARD\r\n"
    )
    put_headers = {"Content-Type": "text/vcard; charset=utf-8", "If-None-Match": "*"}
    r = expect(req("PUT", card_url, data=vcard, headers=put_headers), (201, 204), f"PUT {card_url}")
    step(f"put vcard: {r.status_code} etag={r.headers.get('ETag')}")

    # The precondition must reach the backend: a second create has to fail.
    r = expect(req("PUT", card_url, data=vcard, headers=put_headers), (412,), "PUT If-None-Match:* again")
    step("put again with If-None-Match: 412")

    r = req("REPORT", coll, data=QUERY_BODY.format(uid=uid),
            headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
    expect(r, (207,), "REPORT addressbook-query")
    if uid not in r.text or urlsplit(card_url).path not in r.text:
        fail(f"addressbook-query did not return the contact: {r.text[:500]!r}")
    step("addressbook-query: contact found")

    r = expect(req("GET", card_url), (200,), f"GET {card_url}")
    if f"UID:{uid}" not in r.text:
        fail("GET returned a different vCard")
    etag = r.headers.get("ETag")
    step(f"get vcard: 200 etag={etag}")

    del_headers = {"If-Match": etag} if etag else {}
    r = expect(req("DELETE", card_url, headers=del_headers), (200, 204), f"DELETE {card_url}")
    step(f"delete vcard: {r.status_code}")
    expect(req("GET", card_url), (404,), "GET after DELETE")
    step("get after delete: 404")
    step("carddav flow: OK")


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:
        print(f"FAIL: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
