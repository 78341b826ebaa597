#!/usr/bin/perl
# Authenticate with Debian's Authen::TacacsPlus: PORT KEY USER PASSWORD ascii|pap|chap.
# Exit 0 on PASS, 1 on FAIL. CHAP data is id + challenge + MD5(id, password, challenge).
use strict;
use warnings;
use Authen::TacacsPlus;
my ($port, $key, $user, $pw, $type) = @ARGV;
my %t = (ascii => &Authen::TacacsPlus::TAC_PLUS_AUTHEN_TYPE_ASCII, pap => &Authen::TacacsPlus::TAC_PLUS_AUTHEN_TYPE_PAP, chap => &Authen::TacacsPlus::TAC_PLUS_AUTHEN_TYPE_CHAP);
my $tac = new Authen::TacacsPlus(Host => '127.0.0.1', Port => $port, Key => $key, Timeout => 5) or die "connect: " . Authen::TacacsPlus::errmsg();
if ($type eq 'chap') {
  my $id = 'A'; my $challenge = '0123456789abcdef';
  use Digest::MD5 qw(md5);
  $pw = $id . $challenge . md5($id . $pw . $challenge);
}
my $ok = $tac->authen($user, $pw, $t{$type});
print(($ok ? "PASS" : "FAIL") . " " . Authen::TacacsPlus::errmsg() . "\n");
$tac->close();
exit($ok ? 0 : 1);
