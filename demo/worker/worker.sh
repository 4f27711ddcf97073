#!/bin/sh
# Counts up in the shared volume every two seconds; the API reports it.
n=$(cat /data/ticks 2>/dev/null || echo 0)
while true; do
	n=$((n + 1))
	echo "$n" > /data/ticks.tmp && mv /data/ticks.tmp /data/ticks
	sleep 2
done
