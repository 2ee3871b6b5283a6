function mpc = wscc9
%WSCC9  WSCC 9-bus system (Anderson & Fouad); network and power flow from ANDES case wscc9/wscc9.raw; inertia H and transient reactance xd1 of the classical model from Anderson & Fouad, Power System Control and Stability, Table 2.1 (100 MVA base).
%   MATPOWER case format, version 2. The bus voltages (Vm, Va) and the slack generation are the
%   solved AC power flow of that case (ANDES 2.0 Newton power flow). The extra matrix
%   mpc.gendyn holds the classical generator data used by mftg_jax.frequency:
%   [bus  H (s, 100 MVA base)  xd1 (p.u., 100 MVA base)].

%% MATPOWER Case Format : Version 2
mpc.version = '2';

%%-----  Power Flow Data  -----%%
%% system MVA base
mpc.baseMVA = 100;

%% bus data
%	bus_i	type	Pd	Qd	Gs	Bs	area	Vm	Va	baseKV	zone	Vmax	Vmin
mpc.bus = [
	1	3	0	0	0	0	1	1.04	2.674730245e-12	16.5	0	1.1	0.9;
	2	2	0	0	0	0	1	1.025	9.350671131	18	0	1.1	0.9;
	3	2	0	0	0	0	1	1.025	5.141978758	13.8	0	1.1	0.9;
	4	1	0	0	0	0	1	1.025307234	-2.217409026	230	0	1.1	0.9;
	5	1	125	50	0	0	1	0.9997231182	-3.680151466	230	0	1.1	0.9;
	6	1	90	30	0	0	1	1.012254952	-3.566556145	230	0	1.1	0.9;
	7	1	0	0	0	0	1	1.026831697	3.796136535	230	0	1.1	0.9;
	8	1	100	35	0	0	1	1.017266095	1.337265147	230	0	1.1	0.9;
	9	1	0	0	0	0	1	1.032689357	2.444822536	230	0	1.1	0.9;
];

%% generator data
%	bus	Pg	Qg	Qmax	Qmin	Vg	mBase	status	Pmax	Pmin
mpc.gen = [
	1	71.62746683	27.91479131	9900	-9900	1.04	100	1	450	0;
	2	163	4.9031964	9900	-9900	1.025	100	1	240	0;
	3	85	-11.44880096	9900	-9900	1.025	100	1	90	0;
];

%% branch data
%	fbus	tbus	r	x	b	rateA	rateB	rateC	ratio	angle	status	angmin	angmax
mpc.branch = [
	5	4	0.01	0.068	0.176	0	0	0	0	0	1	-360	360;
	6	4	0.017	0.092	0.158	0	0	0	0	0	1	-360	360;
	7	5	0.032	0.161	0.306	0	0	0	0	0	1	-360	360;
	9	6	0.039	0.1738	0.358	0	0	0	0	0	1	-360	360;
	7	8	0.0085	0.0576	0.149	0	0	0	0	0	1	-360	360;
	8	9	0.0119	0.1008	0.209	0	0	0	0	0	1	-360	360;
	4	1	0	0.0576	0	0	0	0	0	0	1	-360	360;
	2	7	0	0.0625	0	0	0	0	0	0	1	-360	360;
	9	3	0	0.0586	0	0	0	0	0	0	1	-360	360;
];

%% classical generator data
%	bus	H	xd1
mpc.gendyn = [
	1	23.64	0.0608;
	2	6.4	0.1198;
	3	3.01	0.1813;
];
