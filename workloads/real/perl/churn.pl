# Allocation-heavy Perl workload for the tinymalloc bench (real group, "perl"), run by Debian's
# perl. Usage: perl churn.pl [--scale] default|quick|tiny [--expect HEX]
# Four phases, all deterministic (own LCG, no rand):
#   trees    binary trees of array references (short-lived trees plus one long-lived tree)
#   records  hashes of string fields and arrays, rebuilt in generations
#   hashes   a string-keyed hash with random inserts and deletes of arrays
#   strings  sprintf, repetition, substitution, split, join and reverse
# Debian's perl is built without its own malloc (usemymalloc=n), so every scalar body, array,
# hash and string buffer comes from the allocator under test.
# Prints "checksum <hex>", then a TMBENCH line, then "check: ok" when the checksum equals the
# expected value for the scale (or --expect HEX); exits 1 with a message on stderr otherwise,
# 2 on a usage error.
use strict;
use warnings;
use Time::HiRes qw(clock_gettime CLOCK_PROCESS_CPUTIME_ID);

my %PARAMS = (
    #          depth, tree iterations, records, generations, hash ops, hash size, string rounds
    default => [16, 24, 60000, 10, 1500000, 50000, 500000],
    quick   => [14, 8, 20000, 4, 250000, 20000, 80000],
    tiny    => [10, 3, 2000, 2, 10000, 2000, 4000],
);
my %EXPECTED = (
    default => "98dfe811cb57",
    quick   => "6959c846c524",
    tiny    => "19e563f89a91",
);

my ($scale, $expect) = ("default", undef);
while (@ARGV) {
    my $a = shift @ARGV;
    if ($a eq "--scale") { $scale = shift(@ARGV) // "" }
    elsif ($a eq "--expect") { $expect = shift(@ARGV) // "" }
    else { $scale = $a }
}
if (!exists $PARAMS{$scale}) {
    print STDERR "churn.pl: unknown scale '$scale' (default|quick|tiny)\n";
    exit 2;
}
$expect //= $EXPECTED{$scale};
my ($DEPTH, $ITERS, $RECS, $GENS, $HOPS, $HSIZE, $SROUNDS) = @{ $PARAMS{$scale} };

my $MASK = (1 << 48) - 1;    # 48 bits
my $seed = 12345;
sub rnd {                     # 0 .. n-1; a 31-bit LCG, the same in the ruby workload
    $seed = ($seed * 1103515245 + 12345) & 0x7FFFFFFF;
    return ($seed >> 8) % $_[0];
}
my $h = 0;
sub mix { $h = ($h * 31 + $_[0]) & $MASK }

my $t0 = clock_gettime(CLOCK_PROCESS_CPUTIME_ID);
my $ops = 0;

# phase 1: binary trees
sub make {
    my ($d) = @_;
    return [] if $d == 0;
    return [ make($d - 1), make($d - 1) ];
}
sub check {
    my ($t) = @_;
    return 1 unless @$t;
    return 1 + check($t->[0]) + check($t->[1]);
}
my $long = make($DEPTH);
for my $i (0 .. $ITERS - 1) {
    my $d = 4 + ($i % ($DEPTH - 3));
    my $n = 0;
    $n += check(make($d)) for 1 .. (1 << ($DEPTH - $d));
    mix($n);
    $ops += $n;
}
mix(check($long));

# phase 2: records rebuilt in generations; each generation keeps links into the last
my @prev;
for my $g (0 .. $GENS - 1) {
    my @cur;
    for my $i (0 .. $RECS - 1) {
        my @tags = map { "tag-$g-$_-" . rnd(1000) } 0 .. rnd(6);
        my @links = @prev ? map { $prev[ rnd(scalar @prev) ] } 1 .. rnd(4) : ();
        push @cur, { name => "node-$g-$i-" . ("x" x rnd(48)), tags => \@tags, links => \@links };
    }
    my $s = 0;
    for my $r (@cur) {
        $s += length $r->{name};
        $s += length $_ for @{ $r->{tags} };
        $s += scalar @{ $_->{tags} } for @{ $r->{links} };
    }
    mix($s);
    $ops += $RECS;
    @prev = @cur;
}
@prev = ();

# phase 3: hash churn
my (%map, $live);
$live = 0;
for my $i (0 .. $HOPS - 1) {
    my $k = "k" . rnd($HSIZE);
    if (my $v = $map{$k}) {
        mix(scalar(@$v) + $v->[0]);
        delete $map{$k};
        $live--;
    }
    else {
        $map{$k} = [ map { $i + $_ } 0 .. rnd(24) ];
        $live++;
    }
}
$ops += $HOPS;
mix($live);

# phase 4: strings
my @parts;
for my $i (0 .. $SROUNDS - 1) {
    my $s = sprintf("%d:%s", $i, "ab" x (1 + rnd(40)));
    $s .= "|" . ($i * 7);
    $s =~ s/ab/x/g if $i % 3 == 0;
    $s = join(";", reverse split(/:/, $s)) if $i % 5 == 0;
    push @parts, $s;
    if (@parts >= 64) {
        mix(length join(",", @parts));
        @parts = ();
    }
}
mix(length join(",", @parts));
$ops += $SROUNDS;

my $secs = clock_gettime(CLOCK_PROCESS_CPUTIME_ID) - $t0;
my $sum = sprintf("%012x", $h);
print "checksum $sum\n";
printf("TMBENCH {\"ops\": %d, \"seconds\": %.6f, \"ops_per_sec\": %.1f, \"clock\": \"cpu\"}\n",
    $ops, $secs, $ops / ($secs > 0 ? $secs : 1e-9));
if ($sum ne $expect) {
    print STDERR "churn.pl: checksum $sum != expected $expect\n";
    exit 1;
}
print "check: ok\n";
