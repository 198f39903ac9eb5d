#!/bin/sh
# share.sh BIN PROFILES...: total samples and the share under crypto/rsa.SignPKCS1v15
bin=$1; shift
go tool pprof -top -cum "$bin" "$@" 2>/dev/null | awk '/Total samples/ {for(i=1;i<=NF;i++) if($i=="samples") t=$(i+2)} / crypto\/rsa.SignPKCS1v15$/ {s=$4} /keys.\(\*Manager\).Sign$/ {k=$4} END {print "total", t, "rsa", s, "keys.Sign", k}'
