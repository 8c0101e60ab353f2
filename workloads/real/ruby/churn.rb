# Allocation-heavy Ruby workload for the tinymalloc bench (real group, "ruby"), run by Debian's
# ruby3.1. Usage: ruby churn.rb [--scale] default|quick|tiny [--expect HEX]
# Four phases, all deterministic (own LCG, no rand):
#   trees    binary trees of objects (short-lived trees plus one long-lived tree)
#   graph    records with string fields and arrays of neighbours, rebuilt in generations
#   hashes   a string-keyed hash with random inserts and deletes of arrays
#   strings  interpolation, repetition, format, gsub, split and join
# Ruby's own heap holds the objects (its slots come from malloc in 16 KiB pages); strings
# longer than a slot's embedded capacity, arrays, hashes and their tables are malloc'ed one by
# one, which is where the allocator under test works.
# Prints "checksum <hex>", then a TMBENCH line, then "check: ok" when the checksum equals the
# expected value for the scale (or --expect HEX); exits 1 with a message on stderr otherwise,
# 2 on a usage error.
PARAMS = {
  #              depth, tree iterations, graph nodes, generations, hash ops, hash size, string rounds
  "default" => [16, 40, 60_000, 12, 1_500_000, 50_000, 400_000],
  "quick" => [14, 12, 20_000, 4, 250_000, 20_000, 60_000],
  "tiny" => [10, 3, 2_000, 2, 10_000, 2_000, 3_000],
}.freeze
EXPECTED = {
  "default" => "0a38a60088c3",
  "quick" => "d31a353a03b4",
  "tiny" => "ce57653a1012",
}.freeze

args = ARGV.dup
scale = "default"
expect = nil
until args.empty?
  a = args.shift
  case a
  when "--scale" then scale = args.shift.to_s
  when "--expect" then expect = args.shift.to_s
  else scale = a
  end
end
unless PARAMS.key?(scale)
  warn "churn.rb: unknown scale '#{scale}' (default|quick|tiny)"
  exit 2
end
expect ||= EXPECTED[scale]
DEPTH, ITERS, NODES, GENS, HOPS, HSIZE, SROUNDS = PARAMS[scale]

MASK = 0xFFFFFFFFFFFF # 48 bits
$seed = 12_345
def rnd(n) # 0 .. n-1; a 31-bit LCG, the same in the perl workload
  $seed = ($seed * 1_103_515_245 + 12_345) & 0x7FFFFFFF
  ($seed >> 8) % n
end
$h = 0
def mix(x)
  $h = ($h * 31 + x) & MASK
end

t0 = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
ops = 0

# phase 1: binary trees
Tree = Struct.new(:left, :right)
def make(d)
  return Tree.new(nil, nil) if d.zero?

  Tree.new(make(d - 1), make(d - 1))
end

def check(t)
  return 1 if t.left.nil?

  1 + check(t.left) + check(t.right)
end
long = make(DEPTH)
ITERS.times do |i|
  d = 4 + (i % (DEPTH - 3))
  n = 0
  (1 << (DEPTH - d)).times { n += check(make(d)) }
  mix(n)
  ops += n
end
mix(check(long))

# phase 2: an object graph rebuilt in generations; each generation keeps links into the last
class Rec
  attr_reader :name, :tags, :links

  def initialize(name, tags, links)
    @name = name
    @tags = tags
    @links = links
  end
end
prev = []
GENS.times do |g|
  cur = Array.new(NODES) do |i|
    tags = Array.new(1 + rnd(6)) { |k| "tag-#{g}-#{k}-#{rnd(1000)}" }
    links = prev.empty? ? [] : Array.new(rnd(4)) { prev[rnd(prev.size)] }
    Rec.new("node-#{g}-#{i}-" + ("x" * rnd(48)), tags, links)
  end
  s = 0
  cur.each { |r| s += r.name.size + r.tags.sum(&:size) + r.links.sum { |l| l.tags.size } }
  mix(s)
  ops += NODES
  prev = cur
end
prev = nil

# phase 3: hash churn
map = {}
live = 0
HOPS.times do |i|
  k = "k#{rnd(HSIZE)}"
  v = map[k]
  if v
    mix(v.size + v[0])
    map.delete(k)
    live -= 1
  else
    map[k] = Array.new(1 + rnd(24)) { |j| i + j }
    live += 1
  end
end
ops += HOPS
mix(live)

# phase 4: strings
parts = []
SROUNDS.times do |i|
  s = format("%d:%s", i, "ab" * (1 + rnd(40)))
  s = "#{s}|#{i * 7}"
  s = s.gsub("ab", "x") if (i % 3).zero?
  s = s.split(":").reverse.join(";") if (i % 5).zero?
  parts << s
  if parts.size >= 64
    mix(parts.join(",").size)
    parts = []
  end
end
mix(parts.join(",").size)
ops += SROUNDS

secs = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) - t0
sum = format("%012x", $h)
puts "checksum #{sum}"
puts format('TMBENCH {"ops": %d, "seconds": %.6f, "ops_per_sec": %.1f, "clock": "cpu"}',
            ops, secs, ops / (secs.positive? ? secs : 1e-9))
if sum != expect
  warn "churn.rb: checksum #{sum} != expected #{expect}"
  exit 1
end
puts "check: ok"
