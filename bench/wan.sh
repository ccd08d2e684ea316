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
	WAN_IF=dfw${tag: -8}a
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
	local name=$1 port=$2 dir=$WORK/registry-$1 pid i
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
		  addr: $WAN_PEER:$port
	EOF
	ip netns exec "$WAN_NS" docker-registry serve "$dir/config.yml" >"$WORK/$name.log" 2>&1 &
	pid=$!
	on_exit "kill $pid; wait $pid 2>/dev/null"
	_set "$name" URL "http://$WAN_PEER:$port"
	_set "$name" HOSTPORT "$WAN_PEER:$port"
	_set "$name" AUTH plain
	_set "$name" LOG "$WORK/$name.log"
	for ((i = 0; i < 100; i++)); do
		curl -sf -o /dev/null "http://$WAN_PEER:$port/v2/" && return 0
		sleep 0.1
	done
	echo "wan_registry: the registry did not start" >&2
	return 1
}

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
