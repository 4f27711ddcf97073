#!/bin/sh
# Runs once on the front network and reports what it can reach.
sleep 1
echo "probe -> api (front):          $(timeout 5 wget -q -O - http://api:8000/cgi-bin/db 2>&1 || echo unreachable)"
if nslookup db >/dev/null 2>&1 || nslookup database >/dev/null 2>&1; then
	echo "probe -> db name:              RESOLVED (isolation broken)"
else
	echo "probe -> db name:              not resolvable from front (isolated)"
fi
echo "probe done"
exec sleep 3600
