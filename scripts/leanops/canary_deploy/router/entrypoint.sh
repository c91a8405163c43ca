#!/bin/sh
# A router without a configuration answers 503 until leanops writes one.
set -e
if [ ! -s /var/lib/leanops/router.conf ]; then
    printf 'server {\n    listen 8080;\n    location / { return 503 "no model deployed\\n"; }\n}\n' \
        > /var/lib/leanops/router.conf
fi
exec nginx -g 'daemon off;'
