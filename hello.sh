#!/bin/sh
# The classic Docker-in-Docker demo's script: run it at every level, in the
# shared workspace, and every level's line lands in one log.txt.
echo "Hello from $(hostname)" >>log.txt
