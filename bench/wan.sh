# An emulated WAN for the benchmarks, sourced after tests/lib.sh: a network
# namespace joined to this one by a veth pair, with `tc tbf` shaping each
# direction (this kernel has no netem, so there is bandwidth but no added
# latency). The hosts are 198.18.0.1 (here) and 198.18.0.2 (the namespace):
# RFC 2544's benchmarking range, on links this script made and removes.

WAN_HOST=198.18.0.1
WAN_PEER=198.18.0.2

# wan_up RATE: create the namespace and link, shaped to RATE (e.g. 100mbit).
wan_up() {
	local rate=$1 tag=$$
	WAN_NS=dindfs-wan-$tag
	WAN_IF=dfw${tag}a # at most 7 digits: 11 characters, under 16
	ip netns add "$WAN_NS"
	on_exit "ip netns del $WAN_NS"
	ip link add "$WAN_IF" type veth peer name "${WAN_IF%a}b"
	on_exit "ip link del $WAN_IF 2>/dev/null"
	ip link set "${WAN_IF%a}b" netns "$WAN_NS"
	ip addr add "$WAN_HOST/30" dev "$WAN_IF"
	ip link set "$WAN_IF" up
	ip -n "$WAN_NS" addr add "$WAN_PEER/30" dev "${WAN_IF%a}b"
	ip -n "$WAN_NS" link set "${WAN_IF%a}b" up
	ip -n "$WAN_NS" link set lo up
	WAN_RATE=$rate
}

# wan_shape: turn the rate limit on, both ways (after the setup traffic).
wan_shape() {
	tc qdisc add dev "$WAN_IF" root tbf rate "$WAN_RATE" burst 256kb latency 100ms
	tc -n "$WAN_NS" qdisc add dev "${WAN_IF%a}b" root tbf rate "$WAN_RATE" burst 256kb latency 100ms
}

# wan_registry NAME PORT: a docker-registry inside the namespace, at
# http://198.18.0.2:PORT, usable with tests/registry.sh's push helpers.
wan_registry() {
	_wan_registry_serve "$1" "$WAN_PEER:$2" "" ip netns exec "$WAN_NS"
}

# wan_proxy NAME ADDR UPSTREAM_URL: docker-registry as a pull-through cache
# of UPSTREAM_URL (distribution's proxy.remoteurl), here, at http://ADDR.
# Each call starts it again with an empty storage: cold.
wan_proxy() {
	registry_stop "$1"
	rm -rf "$WORK/registry-$1/storage"
	_wan_registry_serve "$1" "$2" "proxy: {remoteurl: '$3'}"
}

# _wan_registry_serve NAME ADDR EXTRA_CONFIG [COMMAND_PREFIX...]: start a
# docker-registry on ADDR (with its access log in NAME_LOG), stopped at exit.
_wan_registry_serve() {
	local name=$1 addr=$2 extra=$3 dir=$WORK/registry-$1
	shift 3
	mkdir -p "$dir"
	cat >"$dir/config.yml" <<-EOF
		version: 0.1
		log:
		  level: warn
		  accesslog:
		    disabled: false
		storage:
		  filesystem:
		    rootdirectory: $dir/storage
		http:
		  addr: $addr
		$extra
	EOF
	"$@" docker-registry serve "$dir/config.yml" >>"$WORK/$name.log" 2>&1 &
	_set "$name" PID $!
	on_exit "registry_stop $name"
	_set "$name" URL "http://$addr"
	_set "$name" HOSTPORT "$addr"
	_set "$name" AUTH plain
	_set "$name" LOG "$WORK/$name.log"
	wan_wait_v2 "http://$addr" "the registry $name"
}

# wan_wait_v2 URL WHAT: wait (10 s at most) until URL/v2/ answers; else say
# that WHAT does not, and fail.
wan_wait_v2() {
	local i
	for ((i = 0; i < 100; i++)); do
		curl -sf -o /dev/null "$1/v2/" && return 0
		sleep 0.1
	done
	echo "wan.sh: $2 does not answer at $1/v2/" >&2
	return 1
}

# wan_blob_bytes NAME: the bytes of all blob GETs that NAME's access log
# shows answered (200 or 206) so far: what that registry has sent of blobs.
wan_blob_bytes() {
	{ grep -oE '"GET /v2/[^ ]+/blobs/sha256:[0-9a-f]{64} HTTP/[0-9.]+" 20[06] [0-9]+' \
		"$(_var "$1" LOG)" || true; } | awk '{ s += $NF } END { printf "%.0f\n", s }'
}

# wan_received: the bytes the host's side of the link has received so far
# (all that came from the namespace, with its IP and TCP headers).
wan_received() { cat "/sys/class/net/$WAN_IF/statistics/rx_bytes"; }

# seconds COMMAND...: run it (quietly), print its wall time in seconds.
seconds() {
	local start end
	start=$(date +%s.%N)
	"$@" >/dev/null 2>&1
	end=$(date +%s.%N)
	echo "$end - $start" | bc -l
}

# median: of the numbers on stdin.
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
