#!/usr/bin/env python3
"""CalDAV round trip with the python `caldav` library, as a real client does it.

usage: caldav_flow.py URL USER PASSWORD [--header NAME:VALUE]...

URL is the server root. Discovery goes through /.well-known/caldav (RFC 6764)
and the current-user-principal, then a calendar is created, an event saved,
found by a time-range search, deleted, and the calendar deleted again.
Prints one line per step; exits 0 on success, 1 with a FAIL line otherwise.

--header lets the script talk to a backend directly (e.g. Radicale trusting
`X-Remote-User`), which is how the flow itself is verified without davgate.
"""

import argparse
import datetime as dt
import sys
import uuid
from urllib.parse import urljoin

import caldav
import niquests

from flowlib import fail, parse_headers, step


def well_known(root, user, password, headers):
    """Resolve /.well-known/caldav to the context path, without following the
    redirect blindly: we want to see (and report) what the server answers."""
    url = urljoin(root, "/.well-known/caldav")
    r = niquests.request(
        "PROPFIND",
        url,
        headers={**headers, "Depth": "0"},
        auth=(user, password),
        allow_redirects=False,
        timeout=30,
    )
    if r.status_code in (301, 302, 303, 307, 308):
        location = r.headers.get("Location")
        if not location:
            fail(f"{url}: {r.status_code} without Location")
        context = urljoin(url, location)
        step(f"well-known: {r.status_code} -> {context}")
        return context
    if r.status_code in (200, 207):
        step(f"well-known: {r.status_code}, served in place")
        return url
    fail(f"{url}: expected a redirect, got {r.status_code}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("user")
    ap.add_argument("password")
    ap.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    args = ap.parse_args()
    headers = parse_headers(args.header)
    root = args.url if args.url.endswith("/") else args.url + "/"

    context = well_known(root, args.user, args.password, headers)

    # A URL with a path turns off the library's own RFC 6764 lookup (which
    # insists on https), so we hand it the context path found above.
    client = caldav.DAVClient(
        url=context, username=args.user, password=args.password, headers=headers
    )
    principal = client.principal()
    step(f"principal: {principal.url}")
    step(f"calendar-home-set: {principal.calendar_home_set.url}")

    suffix = uuid.uuid4().hex[:12]
    cal = principal.make_calendar(name=f"davgate test {suffix}", cal_id=f"davgate-{suffix}")
    step(f"make_calendar: {cal.url}")
    if not any(c.url == cal.url for c in principal.calendars()):
        fail("new calendar not listed under the calendar home")
    step("calendars: new calendar listed")

    uid = f"davgate-{uuid.uuid4()}@test"
    start = dt.datetime(2030, 5, 17, 10, 0, tzinfo=dt.timezone.utc)
    ical = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//davgate//tests//EN\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20300101T000000Z\r\n"
        "DTSTART:20300517T100000Z\r\nDTEND:20300517T110000Z\r\n"
        "SUMMARY:davgate flow\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    add = getattr(cal, "add_event", None) or cal.save_event  # add_event is caldav >= 3
    event = add(ical)
    step(f"save_event: {event.url}")

    found = cal.search(start=start - dt.timedelta(hours=1), end=start + dt.timedelta(hours=3), event=True)
    if not any(uid in e.data for e in found):
        fail(f"search: event {uid} not found ({len(found)} results)")
    step(f"search: found event ({len(found)} result(s))")

    missed = cal.search(start=start + dt.timedelta(days=1), end=start + dt.timedelta(days=2), event=True)
    if missed:
        fail(f"search outside the event's range returned {len(missed)} result(s)")
    step("search: empty outside range")

    event.delete()
    if cal.search(start=start - dt.timedelta(hours=1), end=start + dt.timedelta(hours=3), event=True):
        fail("event still found after delete")
    step("delete event: ok")

    cal.delete()
    if any(c.url == cal.url for c in principal.calendars()):
        fail("calendar still listed after delete")
    step("delete calendar: ok")
    step("caldav flow: OK")


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # one clear line for the Rust test's assertion message
        print(f"FAIL: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
